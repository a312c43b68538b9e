#!/usr/bin/env bash
# How the learned router does on data it was not trained on, for ladders of model names it has
# never seen (the transfer head decides). Reproduces the figures of
# research/router-transfer/README.md.
#
#   bash research/router-transfer/transfer_check.sh TIERWISE DATA_DIR OUT_DIR [PART...]
#
# TIERWISE = the tierwise binary, DATA_DIR = ../shared/data/routing (mmlu_pro + llmrouter),
# OUT_DIR = scratch space. PARTs (default: all three):
#   cross     trained on one data set, evaluated on the other: headline pairs and 3-4 tier ladders
#   allpairs  every pair of models >= 0.05 apart in mean score (every third pair on mmlu_pro)
#   heldout   a held-out llmrouter task / mmlu_pro category, models renamed (x-...) so they are
#             unseen; the head learns from mmlu_pro only, the other data set only, or both
# Each eval line: APGR, CPT(50%), savings_at_95 and random's savings_at_95. ~20 min on 2 busy cores.
set -euo pipefail
T=$(realpath "$1"); D=$(realpath "$2"); O=$3; shift 3
PARTS=${*:-cross allpairs heldout}
mkdir -p "$O"; O=$(realpath "$O")
train() { nice -n 19 "$T" train "$@" >/dev/null 2>&1 || { echo "train failed: $*" >&2; exit 2; }; }
# ev LABEL ROUTER MODELS DATA... -> one tab-separated line
ev() {
  local label=$1 router=$2 models=$3; shift 3
  nice -n 19 "$T" eval --data "$@" --models "$models" --router "$router" --json 2>/dev/null |
    LABEL="$label" python3 -c '
import json, os, sys
d = json.load(sys.stdin); p = lambda v: "nan" if v is None else f"{v:.3f}"
print(os.environ["LABEL"], p(d["apgr"]), p(d["cpt50"]), p(d["savings_at_95"]),
      p(d["baselines"]["random"]["savings_at_95"]), d["rows"], sep="\t")'
}
# the llmrouter test rows whose messages are not also in train, and per-task / per-category
# subsets (models renamed x-...) with the training sets that leave them out
python3 - "$D" "$O" <<'PY'
import gzip, json, os, shutil, sys
D, O = sys.argv[1], sys.argv[2]
L, M = f'{D}/llmrouter', f'{D}/mmlu_pro'
def write(d, rows, models, rename):
    os.makedirs(d, exist_ok=True)
    ms = {('x-' + k if rename else k): v for k, v in models['models'].items()}
    json.dump(dict(models, models=ms), open(f'{d}/models.json', 'w'))
    with open(f'{d}/outcomes.jsonl', 'w') as o:
        for r in rows:
            if rename:
                r = dict(r, outcomes={'x-' + k: v for k, v in r['outcomes'].items()})
            o.write(json.dumps(r) + '\n')
lm, mm = json.load(open(f'{L}/models.json')), json.load(open(f'{M}/models.json'))
train = [json.loads(l) for l in gzip.open(f'{L}/outcomes_train.jsonl.gz', 'rt')]
test = [json.loads(l) for l in gzip.open(f'{L}/outcomes_test.jsonl.gz', 'rt')]
seen = {json.dumps(r['messages']) for r in train}
write(f'{O}/lrdedup', [r for r in test if json.dumps(r['messages']) not in seen], lm, False)
mrows = [json.loads(l) for l in gzip.open(f'{M}/outcomes.jsonl.gz', 'rt')]
for t in ['gsm8k', 'mmlu', 'math', 'arc_challenge', 'mbpp', 'natural_qa', 'commonsense_qa', 'gpqa']:
    write(f'{O}/task/x_{t}', [r for r in train + test if r.get('category') == t], lm, True)
    write(f'{O}/task/minus_{t}', [r for r in train + test if r.get('category') != t], lm, False)
for c in ['math', 'law', 'physics', 'history', 'psychology', 'computer science']:
    c_ = c.replace(' ', '_')
    write(f'{O}/cat/x_{c_}', [r for r in mrows if r['category'] == c], mm, True)
    write(f'{O}/cat/minus_{c_}', [r for r in mrows if r['category'] != c], mm, False)
# pairs >= 0.05 apart in mean score, weaker first
def pairs(rows, step):
    ms = sorted({m for r in rows for m in r['outcomes']})
    mu = {m: sum(r['outcomes'][m]['score'] for r in rows if m in r['outcomes'])
          / sum(1 for r in rows if m in r['outcomes']) for m in ms}
    o = sorted(ms, key=lambda m: mu[m])
    ps = [f'{o[i]},{o[j]}' for i in range(len(o)) for j in range(i + 1, len(o)) if mu[o[j]] - mu[o[i]] >= 0.05]
    return ps[::step]
open(f'{O}/pairs_lr.txt', 'w').write('\n'.join(pairs(train, 1)) + '\n')
open(f'{O}/pairs_mm.txt', 'w').write('\n'.join(pairs(mrows, 3)) + '\n')
PY
R=$O/routers; mkdir -p "$R"
train --data "$D/mmlu_pro" --features signals,lexical --out "$R/mm.json"
train --data "$D/llmrouter/outcomes_train.jsonl.gz" --features signals,lexical --out "$R/lr.json"
mean() { python3 -c '
import sys, math
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
for key in sorted({r[0].split(" ")[0] for r in rows}):
    v = [[float(x) for x in r[1:5]] for r in rows if r[0].split(" ")[0] == key]
    m = lambda i: sum(x[i] for x in v if not math.isnan(x[i])) / max(1, sum(1 for x in v if not math.isnan(x[i])))
    print(f"{key}\tn={len(v)}\tAPGR {m(0):.3f}\tCPT50 {m(1):.3f}\tsavings@95 {m(2):.3f}\t(random {m(3):.3f})")' "$1"; }
for part in $PARTS; do case $part in
cross)
  M8P=Meta-Llama-3_1-8B-Instruct,gemini-1.5-pro-002; LGN=gemma-2-9b-it,llama-3.1-nemotron-51b-instruct
  {
  ev "llmrouter→mmlu_pro 8B→pro" "$R/lr.json" $M8P "$D/mmlu_pro"
  ev "llmrouter→mmlu_pro 8B→70B" "$R/lr.json" Meta-Llama-3_1-8B-Instruct,Meta-Llama-3_1-70B-Instruct "$D/mmlu_pro"
  ev "llmrouter→mmlu_pro flash→pro" "$R/lr.json" gemini-1.5-flash-002,gemini-1.5-pro-002 "$D/mmlu_pro"
  ev "llmrouter→mmlu_pro 3 tiers phi3/8B/70B" "$R/lr.json" Phi-3-mini-4k-instruct,Meta-Llama-3_1-8B-Instruct,Meta-Llama-3_1-70B-Instruct "$D/mmlu_pro"
  ev "llmrouter→mmlu_pro 4 tiers 8B/flash/70B/pro" "$R/lr.json" Meta-Llama-3_1-8B-Instruct,gemini-1.5-flash-002,Meta-Llama-3_1-70B-Instruct,gemini-1.5-pro-002 "$D/mmlu_pro"
  ev "mmlu_pro→llmrouter-test gemma→nemotron51" "$R/mm.json" $LGN "$D/llmrouter" --split test
  ev "mmlu_pro→llmrouter-test-dedup gemma→nemotron51" "$R/mm.json" $LGN "$O/lrdedup"
  ev "mmlu_pro→llmrouter-test-dedup qwen7b→nemotron51" "$R/mm.json" qwen2.5-7b-instruct,llama-3.1-nemotron-51b-instruct "$O/lrdedup"
  ev "mmlu_pro→llmrouter-test-dedup 3 tiers gemma/llama8b/nemotron51" "$R/mm.json" gemma-2-9b-it,llama-3.1-8b-instruct,llama-3.1-nemotron-51b-instruct "$O/lrdedup"
  ev "mmlu_pro→llmrouter-train gemma→nemotron51" "$R/mm.json" $LGN "$D/llmrouter" --split train
  } | tee "$O/cross.tsv" ;;
allpairs)
  : > "$O/allpairs.tsv"
  while read -r p; do
    ev "mmlu_pro→llmrouter-train" "$R/mm.json" "$p" "$D/llmrouter" --split train >> "$O/allpairs.tsv"
    ev "mmlu_pro→llmrouter-test-dedup" "$R/mm.json" "$p" "$O/lrdedup" >> "$O/allpairs.tsv"
  done < "$O/pairs_lr.txt"
  while read -r p; do ev "llmrouter→mmlu_pro" "$R/lr.json" "$p" "$D/mmlu_pro" >> "$O/allpairs.tsv"; done < "$O/pairs_mm.txt"
  mean "$O/allpairs.tsv" ;;
heldout)
  : > "$O/heldout.tsv"
  x() { echo "$1" | sed 's/\([^,]*\)/x-\1/g'; }
  for t in gsm8k mmlu math arc_challenge mbpp natural_qa commonsense_qa gpqa; do
    train --data "$D/mmlu_pro" "$O/task/minus_$t" --features signals,lexical --out "$R/both_$t.json"
    train --data "$O/task/minus_$t" --features signals,lexical --out "$R/lr_$t.json"
    for p in gemma-2-9b-it,llama-3.1-nemotron-51b-instruct qwen2.5-7b-instruct,llama-3.1-nemotron-51b-instruct \
             mistral-7b-instruct-v0.3,llama-3.1-nemotron-51b-instruct; do
      ev "task:head-from-mmlu_pro $t $p" "$R/mm.json" "$(x $p)" "$O/task/x_$t" >> "$O/heldout.tsv"
      ev "task:head-from-other-tasks $t $p" "$R/lr_$t.json" "$(x $p)" "$O/task/x_$t" >> "$O/heldout.tsv"
      ev "task:head-from-both $t $p" "$R/both_$t.json" "$(x $p)" "$O/task/x_$t" >> "$O/heldout.tsv"
    done
  done
  for c in math law physics history psychology computer_science; do
    train --data "$D/llmrouter/outcomes_train.jsonl.gz" "$D/llmrouter/outcomes_test.jsonl.gz" "$O/cat/minus_$c" \
      --features signals,lexical --out "$R/cboth_$c.json"
    train --data "$O/cat/minus_$c" --features signals,lexical --out "$R/cmm_$c.json"
    for p in Meta-Llama-3_1-8B-Instruct,gemini-1.5-pro-002 Meta-Llama-3_1-8B-Instruct,Meta-Llama-3_1-70B-Instruct \
             gemini-1.5-flash-002,gemini-1.5-pro-002; do
      ev "category:head-from-llmrouter $c $p" "$R/lr.json" "$(x $p)" "$O/cat/x_$c" >> "$O/heldout.tsv"
      ev "category:head-from-other-categories $c $p" "$R/cmm_$c.json" "$(x $p)" "$O/cat/x_$c" >> "$O/heldout.tsv"
      ev "category:head-from-both $c $p" "$R/cboth_$c.json" "$(x $p)" "$O/cat/x_$c" >> "$O/heldout.tsv"
    done
  done
  mean "$O/heldout.tsv" ;;
*) echo "unknown part $part (cross, allpairs, heldout)" >&2; exit 2 ;;
esac; done
