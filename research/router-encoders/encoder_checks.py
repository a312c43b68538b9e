#!/usr/bin/env python3
"""Two content-aware candidates for routing within a held-out MMLU-like task
(research/router-encoders/README.md): a FINE-TUNED all-MiniLM-L6-v2 (the RouteLLM BERT-router
recipe, on CPU) and the semantic similarity of a multiple-choice question's OPTIONS (distractor
plausibility, a classic item-difficulty signal). Both are measured with `tierwise eval`'s pair
metric (within_task.pm, from research/router-within-task/) on the same held-out categories and
pairs as `research/router-transfer/transfer_check.sh heldout`.

  python research/router-encoders/encoder_checks.py finetune DATA_DIR [EPOCHS] [FROZEN_LAYERS] [in-set]
  python research/router-encoders/encoder_checks.py options DATA_DIR

DATA_DIR = ../shared/data/routing.  Needs the MiniLM files (`scripts/fetch-minilm.sh`) and the
static model (`scripts/fetch-embeddings.sh`).  Python packages, from PyPI, in two venvs because
model2vec 0.10 wants a newer huggingface-hub and tokenizers than transformers 4.46.3 allows:
  finetune: requirements.txt           (CPU; ~3 min to cache the frozen layers, then ~3 min per
            epoch and held-out fold at 1 epoch / 2 trainable layers on 2 quiet cores, 8 min per
            epoch with 4 trainable layers under load)
  options:  requirements-options.txt   (~2 min)

finetune: the frozen embeddings and first FROZEN_LAYERS (default 4) of the 6 layers are run once
over every row (first 128 word pieces); the top layers are trained, mean pooled, with two heads:
the transfer head's label (within_task.gain_label, the pair-normalised gain, MSE) and an IRT
head (per-model ability - difficulty + per-model deviation, BCE on every model's outcome).
Trained on the mmlu_pro rows outside the held-out categories; scored on them (and, for the first
fold, on llmrouter's `mmlu` task, whose models it never saw): "ft gain" = the gain head,
"ft difficulty" = the IRT head's mean P(ok) reversed (hardest first), "ft IRT pair" = P(strong)
- P(weak) for the pair's own models (known models, new category).  "frozen ridge" = ridge of the
gain label on the pretrained model's mean-pooled output (no fine-tuning).  `in-set` instead
trains on four fifths of mmlu_pro, all categories mixed, and scores the fifth left (the `--cv`
case), beside word TF-IDF ridge on each pair's own gain (numpy scipy scikit-learn).
"""
import copy
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'router-within-task'))
from within_task import LP3, MP3, gain_label, pm, rows_of, text_of, ymat  # noqa: E402

ROOT = os.path.join(HERE, '..', '..')
MINILM = os.path.join(ROOT, 'router', 'embed', 'all-minilm-l6-v2')
STATIC = os.path.join(ROOT, 'router', 'embed', 'tokenlearn-static-model-0.1.1')
FOLDS = [['history', 'psychology', 'law'], ['math', 'physics', 'computer science']]
MAX_LEN = 128


def mean_over(res, i):
    return np.nanmean([r[i] for r in res])


# ---------------------------------------------------------------- fine-tuned MiniLM


def finetune(data, epochs, frozen, in_set=False):
    import torch
    from transformers import BertModel, PreTrainedTokenizerFast
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    tok = PreTrainedTokenizerFast(tokenizer_file=f'{MINILM}/tokenizer.json')
    bert = BertModel.from_pretrained(MINILM).eval()

    def lower_states(texts):
        hs, ms = [], []
        with torch.no_grad():
            for i in range(0, len(texts), 64):
                enc = tok(texts[i:i + 64], truncation=True, max_length=MAX_LEN, padding='max_length',
                          return_tensors='pt')
                ids, am = enc['input_ids'], enc['attention_mask']
                h = bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
                ext = bert.get_extended_attention_mask(am, ids.shape)
                for layer in bert.encoder.layer[:frozen]:
                    h = layer(h, attention_mask=ext)[0]
                hs.append(h.half())
                ms.append(am.bool())
        return torch.cat(hs), torch.cat(ms)

    class Top(torch.nn.Module):
        def __init__(self, n_models):
            super().__init__()
            self.layers = torch.nn.ModuleList([copy.deepcopy(x) for x in bert.encoder.layer[frozen:]])
            self.gain = torch.nn.Linear(384, 1)
            self.diff = torch.nn.Linear(384, 1)
            self.ability = torch.nn.Parameter(torch.zeros(n_models))
            self.dev = torch.nn.Linear(384, n_models)
            torch.nn.init.zeros_(self.dev.weight)
            torch.nn.init.zeros_(self.dev.bias)

        def forward(self, h, am):
            ext = bert.get_extended_attention_mask(am.long(), am.shape)
            h = h.float()
            for layer in self.layers:
                h = layer(h, attention_mask=ext)[0]
            m = am.unsqueeze(-1).float()
            e = (h * m).sum(1) / m.sum(1)
            return self.gain(e).squeeze(-1), self.ability - self.diff(e) + self.dev(e), e

    def fit(h, am, g, y, lr=5e-5, bs=32):
        model = Top(y.shape[1])
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        n = len(g)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * ((n + bs - 1) // bs),
                                                    pct_start=0.1)
        gt = torch.tensor(np.nan_to_num(g / np.nanstd(g)), dtype=torch.float32)
        gm = torch.tensor(~np.isnan(g))
        yt = torch.tensor(np.nan_to_num(y), dtype=torch.float32)
        ym = torch.tensor(~np.isnan(y))
        model.train()
        t0 = time.time()
        for ep in range(epochs):
            perm = torch.randperm(n)
            for b in range(0, n, bs):
                idx = perm[b:b + bs]
                pg, logit, _ = model(h[idx], am[idx])
                lg = ((pg - gt[idx]) ** 2 * gm[idx]).sum() / gm[idx].sum().clamp(min=1)
                bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, yt[idx], reduction='none')
                loss = lg + (bce * ym[idx]).sum() / ym[idx].sum().clamp(min=1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            print(f'    epoch {ep + 1}/{epochs}: {time.time() - t0:.0f} s', file=sys.stderr, flush=True)
        return model.eval()

    def predict(model, h, am):
        outs = []
        with torch.no_grad():
            for b in range(0, len(h), 128):
                pg, logit, e = model(h[b:b + 128], am[b:b + 128])
                outs.append((pg.numpy(), torch.sigmoid(logit).numpy(), e.numpy()))
        return [np.concatenate([o[i] for o in outs]) for i in range(3)]

    mm = rows_of(f'{data}/mmlu_pro/outcomes.jsonl.gz')
    lr = [r for f in ('outcomes_train.jsonl.gz', 'outcomes_test.jsonl.gz')
          for r in rows_of(f'{data}/llmrouter/{f}') if r.get('category') == 'mmlu']
    models = sorted({m for r in mm for m in r['outcomes']})
    lr_models = sorted({m for r in lr for m in r['outcomes']})
    y, yl = ymat(mm, models), ymat(lr, lr_models)
    cat = np.array([r.get('category') for r in mm])
    print(f'caching {frozen} frozen layers over {len(mm) + len(lr)} rows ...', file=sys.stderr, flush=True)
    h, am = lower_states([text_of(r) for r in mm])
    hl, aml = lower_states([text_of(r) for r in lr])
    _, _, e_all = predict(Top(len(models)), h, am)
    _, _, e_lr = predict(Top(len(models)), hl, aml)
    print(f'fine-tuned all-MiniLM-L6-v2, {6 - frozen} trainable layers, {epochs} epoch(s); '
          f'APGR / CPT(50%), mean over the pairs {MP3}')
    folds = FOLDS
    if in_set:
        # one random fifth of mmlu_pro, all categories mixed: the `--cv` case, not a held-out one
        te5 = np.random.default_rng(0).integers(0, 5, len(mm)) == 0
        cat = np.where(te5, 'random fifth', cat)
        folds = [['random fifth']]
    for n_fold, hold in enumerate(folds):
        te = np.isin(cat, hold)
        tr = ~te
        g = gain_label(y[tr])
        print(f'== held out {hold}: trained on {tr.sum()} rows, scored on {te.sum()}', flush=True)
        model = fit(h[torch.from_numpy(tr)], am[torch.from_numpy(tr)], g, y[tr])
        pg, p, _ = predict(model, h[torch.from_numpy(te)], am[torch.from_numpy(te)])
        scores = {'frozen ridge L2 10': ridge(e_all[tr], g, e_all[te], 10.0), 'ft gain': pg,
                  'ft difficulty': -p.mean(1)}
        for name, s in scores.items():
            res = [(c, *[pm(s[cat[te] == c], y[te][cat[te] == c][:, models.index(a)],
                            y[te][cat[te] == c][:, models.index(b)])[q] for q in ('apgr', 'cpt50')])
                   for c in hold for a, b in MP3]
            per = '  '.join(f'{c} {np.nanmean([r[1] for r in res if r[0] == c]):.3f}' for c in hold)
            print(f'  {name:22s} {mean_over(res, 1):.3f} / {100 * mean_over(res, 2):.1f}%   ({per})', flush=True)
        res = [[pm(p[cat[te] == c][:, models.index(b)] - p[cat[te] == c][:, models.index(a)],
                   y[te][cat[te] == c][:, models.index(a)], y[te][cat[te] == c][:, models.index(b)])[q]
                for q in ('apgr', 'cpt50')] for c in hold for a, b in MP3]
        print(f'  {"ft IRT pair (known)":22s} {mean_over(res, 0):.3f} / {100 * mean_over(res, 1):.1f}%')
        if in_set:
            # the text baseline on the same split: word TF-IDF ridge of each pair's own gain
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import Ridge
            x = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(
                [text_of(r)[:1536] for r in mm])
            res = []
            for a, b in MP3:
                gain = y[:, models.index(b)] - y[:, models.index(a)]
                ok = tr & ~np.isnan(gain)
                s = Ridge(alpha=3).fit(x[ok], gain[ok]).predict(x[te])
                r = pm(s, y[te][:, models.index(a)], y[te][:, models.index(b)])
                res.append((r['apgr'], r['cpt50']))
            print(f'  {"TF-IDF ridge, pair gain":22s} {mean_over(res, 0):.3f} / {100 * mean_over(res, 1):.1f}%')
        if n_fold == 0:
            pgl, pl, _ = predict(model, hl, aml)
            for name, s in {'frozen ridge L2 10': ridge(e_all[tr], g, e_lr, 10.0), 'ft gain': pgl,
                            'ft difficulty': -pl.mean(1)}.items():
                res = [[pm(s, yl[:, lr_models.index(a)], yl[:, lr_models.index(b)])[q] for q in ('apgr', 'cpt50')]
                       for a, b in LP3]
                print(f'  llmrouter mmlu ({len(lr)} rows, pairs {[b for b, _ in LP3]} -> nemotron-51b), '
                      f'{name:18s} {mean_over(res, 0):.3f} / {100 * mean_over(res, 1):.1f}%', flush=True)


def ridge(etr, g, ete, l2):
    ok = ~np.isnan(g)
    mu, sd = etr[ok].mean(0), etr[ok].std(0).clip(1e-6)
    u = (etr[ok] - mu) / sd
    w = np.linalg.solve(u.T @ u / len(u) + l2 * np.eye(u.shape[1]), u.T @ (g[ok] - g[ok].mean()) / len(u))
    return ((ete - mu) / sd) @ w


# ---------------------------------------------------------------- option similarity

OPTION = re.compile(r'^([A-J])\. (.*)$')


def options(data):
    from model2vec import StaticModel
    from scipy.sparse import csr_matrix, hstack
    from scipy.stats import spearmanr
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge
    m2v = StaticModel.from_pretrained(STATIC)
    rows = rows_of(f'{data}/mmlu_pro/outcomes.jsonl.gz')
    models = sorted({m for r in rows for m in r['outcomes']})
    y = ymat(rows, models)
    cat = np.array([r['category'] for r in rows])
    stems, opts = [], []
    for r in rows:
        o, s = [], []
        for line in text_of(r).split('\n'):
            m = OPTION.match(line)
            if m:
                o.append(m.group(2))
            elif not o:
                s.append(line)
        stems.append('\n'.join(s))
        opts.append(o)

    def unit(e):
        return e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-9)
    e_opt = unit(m2v.encode([x for o in opts for x in o]))
    e_stem = unit(m2v.encode(stems))
    names = ['options mean sim', 'options max sim', 'stem-option max', 'stem-option margin']
    feats = np.full((len(rows), len(names)), np.nan)
    i = 0
    for j, o in enumerate(opts):
        e = e_opt[i:i + len(o)]
        i += len(o)
        if len(o) < 2:
            continue
        c = (e @ e.T)[np.triu_indices(len(o), 1)]
        so = np.sort(e @ e_stem[j])
        feats[j] = [c.mean(), c.max(), so[-1], so[-1] - so[-2]]
    g, d = gain_label(y), np.nanmean(y, 1)
    print('Spearman rho within each mmlu_pro category: with the gain label / with the mean score (easiness)')
    print(f'{"category":18s} ' + ' '.join(f'{n:>18s}' for n in names))
    for c in sorted(set(cat)):
        cells = []
        for k in range(len(names)):
            ok = (cat == c) & ~np.isnan(feats[:, k]) & ~np.isnan(g)
            cells.append(f'{spearmanr(feats[ok, k], g[ok])[0]:+.2f} / {spearmanr(feats[ok, k], d[ok])[0]:+.2f}')
        print(f'{c[:18]:18s} ' + ' '.join(f'{x:>18s}' for x in cells))
    print(f'\nEach feature alone as the routing score inside every category (pairs {MP3}), either sign:')
    for k, n in enumerate(names):
        for sign in (1, -1):
            res = [[pm(sign * np.nan_to_num(feats[cat == c, k]), y[cat == c][:, models.index(a)],
                       y[cat == c][:, models.index(b)])[q] for q in ('apgr', 'cpt50')]
                   for c in sorted(set(cat)) for a, b in MP3]
            print(f'  {n:20s} {"+" if sign > 0 else "-"}  {mean_over(res, 0):.3f} / {100 * mean_over(res, 1):.1f}%')
    weak, strong = MP3[0]
    yw, ys = y[:, models.index(weak)], y[:, models.index(strong)]
    ok = ~np.isnan(yw) & ~np.isnan(ys)
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(
        [text_of(r)[:1536] for r in rows])
    z = np.nan_to_num((feats - np.nanmean(feats, 0)) / np.nanstd(feats, 0))
    fold = np.random.default_rng(0).integers(0, 5, len(rows))
    print(f'\nIn-distribution, 5-fold over all of mmlu_pro, {weak} -> {strong}: ridge (L2 3) on word uni/bi-gram TF-IDF')
    for name, x in (('TF-IDF', words), ('TF-IDF + option features', hstack([words, csr_matrix(z)]).tocsr())):
        for label in ('gain', 'difficulty'):
            s = np.zeros(len(rows))
            for k in range(5):
                tr, te = (fold != k) & ok, fold == k
                if label == 'gain':
                    s[te] = Ridge(alpha=3).fit(x[tr], (ys - yw)[tr]).predict(x[te])
                    continue
                # predicted difficulty, mapped to the pair's mean gain by 20 quantile bins of the training folds
                fit = Ridge(alpha=3).fit(x[tr], d[tr])
                ptr, pte = fit.predict(x[tr]), fit.predict(x[te])
                edges = np.quantile(ptr, np.linspace(0, 1, 21))
                btr = np.clip(np.searchsorted(edges, ptr) - 1, 0, 19)
                bte = np.clip(np.searchsorted(edges, pte) - 1, 0, 19)
                level = np.array([(ys - yw)[tr][btr == b].mean() if (btr == b).any() else 0.0 for b in range(20)])
                s[te] = level[bte] + 1e-6 * pte
            r = pm(s[ok], yw[ok], ys[ok])
            print(f'  {name:26s} {label:10s} {r["apgr"]:.3f} / {100 * r["cpt50"]:.1f}%')


if __name__ == '__main__':
    import warnings
    warnings.filterwarnings('ignore')
    if len(sys.argv) >= 3 and sys.argv[1] == 'finetune':
        finetune(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1,
                 int(sys.argv[4]) if len(sys.argv) > 4 else 4, sys.argv[5:] == ['in-set'])
    elif len(sys.argv) == 3 and sys.argv[1] == 'options':
        options(sys.argv[2])
    else:
        sys.exit(__doc__)
