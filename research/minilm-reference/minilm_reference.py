"""Independent NumPy forward pass of all-MiniLM-L6-v2 (BERT + mean pooling + L2 norm), used to
check the Rust encoder in crates/tierwise-embed/src/minilm.rs.

Usage: python3 research/minilm-reference/minilm_reference.py [MODEL_DIR]
(default router/embed/all-minilm-l6-v2). Needs numpy and tokenizers (requirements.txt beside
this file). Writes MODEL_DIR/reference.json: [[text, [384 floats]], ...]; the Rust unit test
`minilm::tests::matches_reference_when_present` compares against it.
"""
import json, math, os, struct, sys
import numpy as np
from tokenizers import Tokenizer

d = sys.argv[1] if len(sys.argv) > 1 else "router/embed/all-minilm-l6-v2"
cfg = json.load(open(os.path.join(d, "config.json")))
raw = open(os.path.join(d, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
body = raw[8 + n:]
W = {}
for k, v in hdr.items():
    if k == "__metadata__" or v["dtype"] != "F32":
        continue
    a, b = v["data_offsets"]
    W[k.removeprefix("bert.")] = np.frombuffer(body[a:b], dtype="<f4").reshape(v["shape"]).astype(np.float64)

tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
tok.no_padding()
tok.enable_truncation(128)
erf = np.vectorize(math.erf)


def ln(x, p):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + cfg["layer_norm_eps"]) * W[p + ".weight"] + W[p + ".bias"]


def lin(x, p):
    return x @ W[p + ".weight"].T + W[p + ".bias"]


def embed(text):
    ids = tok.encode(text).ids
    t = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:t] \
        + W["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    H = cfg["num_attention_heads"]
    dh = cfg["hidden_size"] // H
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q = lin(x, p + ".attention.self.query").reshape(t, H, dh).transpose(1, 0, 2)
        k = lin(x, p + ".attention.self.key").reshape(t, H, dh).transpose(1, 0, 2)
        v = lin(x, p + ".attention.self.value").reshape(t, H, dh).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(t, H * dh)
        a = ln(x + lin(ctx, p + ".attention.output.dense"), p + ".attention.output.LayerNorm")
        u = lin(a, p + ".intermediate.dense")
        u = 0.5 * u * (1 + erf(u / math.sqrt(2)))
        x = ln(a + lin(u, p + ".output.dense"), p + ".output.LayerNorm")
    m = x.mean(0)
    return m / np.linalg.norm(m)


texts = [
    "What is the weather forecast for Paris tomorrow?",
    "getCountryInfo: Retrieve information about a specific country",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome",
    "x",
]
out = [[t, [float(v) for v in embed(t)]] for t in texts]
json.dump(out, open(os.path.join(d, "reference.json"), "w"))
e = {t: np.array(v) for t, v in out}
print("cos(food, bread) =", float(e[texts[2]] @ e[texts[3]]), " cos(food, movie) =", float(e[texts[2]] @ e[texts[4]]))
