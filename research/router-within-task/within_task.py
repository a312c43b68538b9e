#!/usr/bin/env python3
"""Routing within ONE held-out task (a GSM8K- or MMLU-like benchmark) with unseen model names:
how far can prompt-only routing go, and do new domain-agnostic features or unsupervised
per-deployment adaptation move the transfer head there?  Reproduces the figures of
research/router-within-task/README.md (NumPy; the pair metric is `tierwise eval`'s: it
reproduces `tierwise eval --data llmrouter --split test --models
gemma-2-9b-it,llama-3.1-nemotron-51b-instruct --scores F` exactly from F, and the transfer head
below reproduces `research/router-transfer/transfer_check.sh cross`).

  python3 research/router-within-task/within_task.py ceiling DATA_DIR
  python3 research/router-within-task/within_task.py candidates DATA_DIR DUMP_DIR
  python3 research/router-within-task/within_task.py subset DATA_DIR OUT_DIR llmrouter|mmlu_pro TASK...
  python3 research/router-within-task/within_task.py minilm OUT_DIR llmrouter|mmlu_pro

DATA_DIR = ../shared/data/routing.  DUMP_DIR holds `dump_features` output of the current code:
  D=DATA_DIR; for s in "mmlu_pro mmlu" "llmrouter train lrtrain" "llmrouter test lrtest"; do set -- $s
    cargo run --release -p tierwise-research --example dump_features -- $D/$1 ${3:+$2} DUMP_DIR/${3:-$2}; done
(i.e. DUMP_DIR/mmlu, DUMP_DIR/lrtrain, DUMP_DIR/lrtest).  `subset` writes the rows of some tasks to
OUT_DIR (outcomes.jsonl + models.json) for `dump_minilm -- OUT_DIR OUT_DIR/x 1536`; `minilm` then
gives the within-task bound of all-MiniLM-L6-v2 embeddings on them.  numpy + scipy
(requirements.txt beside this file).  ~1 min (ceiling), ~3 min (candidates) on a busy core.
"""
import gzip
import json
import re
import sys

import numpy as np

# ---------------------------------------------------------------- the pair metric of `tierwise eval`


def pm(score, yw, ys, min_gap=0.0):
    """APGR / CPT(50%) of routing weak -> strong by `score` (higher = strong earlier), as
    `tierwise eval` computes them: tied scores are one operating point, CPT interpolates
    between adjacent points.  NaN when the strong model's mean gain is <= min_gap."""
    ok = ~(np.isnan(yw) | np.isnan(ys) | np.isnan(score))
    score, yw, ys = score[ok], yw[ok], ys[ok]
    n = len(score)
    gap = ys.mean() - yw.mean() if n else 0.0
    if n < 20 or gap <= max(1e-12, min_gap):
        return dict(apgr=np.nan, cpt50=np.nan)
    order = np.argsort(-score, kind='stable')
    cum = np.concatenate([[0], np.cumsum((ys - yw)[order])])
    idx = np.r_[0, np.nonzero(np.diff(score[order]) != 0)[0] + 1, n]
    pgr, share = cum[idx] / n / gap, idx / n
    cpt = np.nan
    for i in range(len(idx)):
        if pgr[i] >= 0.5 - 1e-12:
            cpt = share[i]
            if i and pgr[i - 1] < 0.5:
                cpt = share[i - 1] + (0.5 - pgr[i - 1]) / (pgr[i] - pgr[i - 1]) * (share[i] - share[i - 1])
            break
    return dict(apgr=np.trapezoid(pgr, share), cpt50=cpt)


# ---------------------------------------------------------------- data


def rows_of(path):
    return [json.loads(line) for line in (gzip.open if path.endswith('.gz') else open)(path, 'rt')]


def ymat(rows, models):
    y = np.full((len(rows), len(models)), np.nan)
    for i, r in enumerate(rows):
        for j, m in enumerate(models):
            if m in r['outcomes']:
                y[i, j] = r['outcomes'][m]['score']
    return y


def text_of(r):
    return '\n'.join(m['content'] for m in r['messages']
                     if m['role'] not in ('assistant', 'tool') and isinstance(m.get('content'), str))


def gain_label(y):
    """`pair_gains` of the router's training code: per row, the mean over ordered pairs (mean
    gain >= 0.03) of (y_strong - y_weak) / mean gain, times the mean of those gains."""
    mu, m = np.nanmean(y, 0), y.shape[1]
    num, cnt, gaps = np.zeros(len(y)), np.zeros(len(y)), []
    for a in range(m):
        for b in range(m):
            if a == b or (mu[a], a) >= (mu[b], b):
                continue
            d = y[:, b] - y[:, a]
            ok = ~np.isnan(d)
            if not ok.any() or d[ok].mean() < 0.03:
                continue
            g = d[ok].mean()
            gaps.append(g)
            num[ok] += d[ok] / g
            cnt[ok] += 1
    out = np.full(len(y), np.nan)
    out[cnt > 0] = np.mean(gaps) * num[cnt > 0] / cnt[cnt > 0]
    return out


LP3 = [('gemma-2-9b-it', 'llama-3.1-nemotron-51b-instruct'), ('qwen2.5-7b-instruct', 'llama-3.1-nemotron-51b-instruct'),
       ('mistral-7b-instruct-v0.3', 'llama-3.1-nemotron-51b-instruct')]
MP3 = [('Meta-Llama-3_1-8B-Instruct', 'gemini-1.5-pro-002'), ('Meta-Llama-3_1-8B-Instruct', 'Meta-Llama-3_1-70B-Instruct'),
       ('gemini-1.5-flash-002', 'gemini-1.5-pro-002')]
# the held-out tasks / categories of transfer_check.sh heldout
TASKS = ['gsm8k', 'mmlu', 'math', 'arc_challenge', 'mbpp', 'natural_qa', 'commonsense_qa', 'gpqa']
CATS = ['math', 'law', 'physics', 'history', 'psychology', 'computer science']


def load(data):
    lrtrain = rows_of(f'{data}/llmrouter/outcomes_train.jsonl.gz')
    lrtest = rows_of(f'{data}/llmrouter/outcomes_test.jsonl.gz')
    mm = rows_of(f'{data}/mmlu_pro/outcomes.jsonl.gz')
    return lrtrain, lrtest, mm


# ---------------------------------------------------------------- step 1: ceilings


def ceiling(data):
    """Per task: route by the TRUE per-query difficulty d = mean score of the models outside the
    pair.  'hardest first' orders by d; 'd->gain map' maps each d level to the pair's mean gain,
    fitted on the same task (in-sample, optimistic) or on the other tasks of the data set (what a
    perfect difficulty estimate could do on a task it never saw); 'oracle' orders by the true
    gain.  Pairs with a mean gain under 0.05 on the task are left out (their PGR is noise)."""
    lrtrain, lrtest, mm = load(data)
    for name, rows, pairs, tasks in [
            ('llmrouter (train + test)', lrtrain + lrtest, LP3, None), ('mmlu_pro', mm, MP3, None)]:
        models = sorted({m for r in rows for m in r['outcomes']})
        y = ymat(rows, models)
        cat = np.array([r.get('category') or 'none' for r in rows])
        tasks = [t for t in sorted(set(cat)) if (cat == t).sum() >= 150]
        print(f'== {name}: mean over pairs {pairs}\n'
              f'{"task":22s} {"rows":>5s} {"gap":>6s} | {"hardest first":>14s} | {"d->gain in-sample":>17s} | '
              f'{"d->gain from others":>19s} | {"oracle":>14s}')
        agg = []
        for t in tasks:
            m = cat == t
            res = []
            for p in pairs:
                w, s = models.index(p[0]), models.index(p[1])
                others = [j for j in range(len(models)) if j not in (w, s)]

                def parts(yy):
                    d = np.nanmean(yy[:, others], 1)
                    return d, np.round(d * 1000).astype(int), yy[:, s] - yy[:, w]
                d, lv, g = parts(y[m])
                do, lo, go = parts(y[~m])

                def level_map(lv_fit, g_fit):
                    ok = ~np.isnan(g_fit)
                    mp = {v: g_fit[ok & (lv_fit == v)].mean() for v in np.unique(lv_fit[ok])}
                    return np.array([mp.get(v, 0.0) for v in lv]) - 1e-9 * d
                yw, ys = y[m][:, w], y[m][:, s]
                rng = np.random.default_rng(0)
                res.append([pm(-d, yw, ys, 0.05), pm(level_map(lv, g), yw, ys, 0.05),
                            pm(level_map(lo, go), yw, ys, 0.05), pm(g + 1e-9 * rng.random(len(g)), yw, ys, 0.05)])
            gap = np.nanmean([np.nanmean(y[m][:, models.index(p[1])]) - np.nanmean(y[m][:, models.index(p[0])]) for p in pairs])
            line = [np.nanmean([r[i][k] for r in res]) if any(not np.isnan(r[i][k]) for r in res) else np.nan
                    for i in range(4) for k in ('apgr', 'cpt50')]
            agg.append(line)
            print(f'{t:22s} {m.sum():5d} {gap:6.3f} | ' + ' | '.join(
                f'{line[2 * i]:.3f} / {line[2 * i + 1] * 100:4.1f}%'.rjust(14 if i in (0, 3) else 17 if i == 1 else 19)
                for i in range(4)))
        a = np.nanmean(np.array(agg), 0)
        print(f'{"MEAN":22s} {"":5s} {"":6s} | ' + ' | '.join(
            f'{a[2 * i]:.3f} / {a[2 * i + 1] * 100:4.1f}%'.rjust(14 if i in (0, 3) else 17 if i == 1 else 19) for i in range(4)))


# ---------------------------------------------------------------- step 2: candidate features

NEG = re.compile(r"\b(not|except|least|false|incorrect|never|none|cannot|isn't|doesn't|untrue|exception)\b", re.I)
NEGCAP = re.compile(r'\b(NOT|EXCEPT|LEAST|FALSE|INCORRECT)\b')
OPT = re.compile(r'^\s*\(?([A-Ja-j])[\.\):]\s+(.*)$')
NUM = re.compile(r'\d+(?:[.,]\d+)*')
SENT = re.compile(r'[.!?](?:\s|$)')
NEW = ['neg', 'negcap', 'n_opts', 'opt_len_mean', 'opt_len_cv', 'stem_vs_opts', 'ln_sent', 'mean_sent_len',
       'ln_distinct_nums', 'ln_max_num_digits', 'decimals', 'ln_stem_chars', 'opt_numeric_frac', 'ln_chars_last_line', 'ln_ops']


def new_features(t):
    """Candidate within-task difficulty signals (all one cheap pass in Rust): negation in the
    question, option count / length / length spread, stem length vs options, sentences, distinct
    quantities, largest number, decimals, arithmetic operators."""
    lines = t.split('\n')
    opts = [m.group(2) for m in (OPT.match(line) for line in lines) if m]
    stem = '\n'.join(line for line in lines if not OPT.match(line))
    ol = np.array([len(o) for o in opts]) if opts else np.array([0.0])
    nums = NUM.findall(stem)
    sents = len(SENT.findall(stem)) + 1
    numeric = re.compile(r'[\s\d.,%$\-+/()^*a-zA-Z]{0,3}[\d.,%$\-+/()^* ]+[a-zA-Z%]{0,6}')
    return [len(NEG.findall(stem)) > 0, len(NEGCAP.findall(stem)) > 0, np.log1p(len(opts)), np.log1p(ol.mean()),
            ol.std() / max(ol.mean(), 1.0), np.log1p(len(stem)) - np.log1p(ol.sum()), np.log1p(sents),
            len(stem.split()) / sents, np.log1p(len(set(nums))),
            np.log1p(max((len(n.replace(',', '').replace('.', '')) for n in nums), default=0)),
            sum('.' in n for n in nums) > 0, np.log1p(len(stem)),
            np.mean([bool(numeric.fullmatch(o)) for o in opts]) if opts else 0.0,
            np.log1p(len(lines[-1]) if lines else 0), np.log1p(len(re.findall(r'[+\-*/=^×÷]', stem)))]


SIG = ['ln_prompt_tokens', 'ln_last_user_tokens', 'ln_turns', 'ln_messages', 'has_system', 'ln_code_blocks', 'code', 'math',
       'structured_output', 'ln_tools', 'domain_law', 'domain_medicine', 'domain_finance', 'domain_science', 'domain_proof',
       'domain_algorithms', 'domain_security', 'lang_en', 'lang_latin', 'lang_cjk', 'lang_other']
LEX = ['ln_words', 'mean_word_len', 'digit_frac', 'upper_frac', 'symbol_frac', 'ln_lines', 'ln_questions', 'ln_option_lines',
       'latex', 'type_token_ratio', 'ln_numbers', 'ln_max_word_len']
FEATS = SIG + LEX + NEW
# TRANSFER_FEATURES of the router's training code
TF = ['ln_prompt_tokens', 'code', 'math', 'ln_words', 'mean_word_len', 'digit_frac', 'upper_frac', 'symbol_frac', 'ln_lines',
      'ln_questions', 'ln_option_lines', 'latex', 'type_token_ratio', 'ln_numbers', 'ln_max_word_len']


def cols(names):
    return [FEATS.index(n) for n in names]


def block(rows, models, dump):
    raw = np.fromfile(dump + '.f32', dtype='<f4').reshape(len(rows), -1).astype(np.float64)
    return dict(X=np.c_[raw[:, :33], np.array([new_features(text_of(r)) for r in rows], dtype=np.float64)],
                E=raw[:, 33:], Y=ymat(rows, models), cat=np.array([r.get('category') or 'none' for r in rows]))


def sub(b, m):
    return {k: v[m] for k, v in b.items()}


def join(a, b):
    return {k: np.concatenate([a[k], b[k]]) for k in a}


class Head:
    """The transfer head of the router's training code (`fit_gain_head`): ridge (L2 0.1) of
    `pair_gains` on the head-standardized features, each training set weighing the same, plus
    LENGTH_PRIOR x the fitted gain's spread on ln_prompt_tokens.  `stats`: how features are
    standardized when scoring ('train' = as shipped; 'running' = by the mean/variance of the
    earlier rows of the evaluated traffic, no labels, no look-ahead)."""

    def __init__(self, feats=TF, l2=0.1, prior=0.5, stats='train'):
        self.feats, self.l2, self.prior, self.stats = feats, l2, prior, stats

    def design(self, blocks):
        z, g, w = [], [], []
        for b in blocks:
            lab = gain_label(b['Y'])
            ok = ~np.isnan(lab)
            z.append(b['X'][ok][:, cols(self.feats)])
            g.append(lab[ok])
            w.append(np.full(ok.sum(), 1.0 / ok.sum()))
        z, g, w = np.vstack(z), np.concatenate(g), np.concatenate(w)
        return z, g, w / w.sum()

    def fit(self, blocks):
        z, g, w = self.design(blocks)
        self.mz = w @ z
        self.sz = np.sqrt(w @ (z - self.mz) ** 2).clip(1e-3)
        u = (z - self.mz) / self.sz
        self.w = np.linalg.solve((u * w[:, None]).T @ u + self.l2 * np.eye(u.shape[1]), (u * w[:, None]).T @ (g - w @ g))
        self.spread = np.sqrt(w @ (u @ self.w) ** 2)
        if 'ln_prompt_tokens' in self.feats and self.prior:
            self.w[self.feats.index('ln_prompt_tokens')] += self.prior * self.spread
        return self

    def std(self, b):
        z = b['X'][:, cols(self.feats)]
        if self.stats == 'running':
            return running_z(z, self.sz)
        return (z - self.mz) / self.sz

    def score(self, b):
        return self.std(b) @ self.w


def running_z(z, prior_sd, warm=50):
    """Each row standardized by the mean / variance (Welford) of the rows before it; the spread
    blends from the training spread to the running one over the first `warm` rows."""
    out, mean, m2 = np.zeros_like(z), np.zeros(z.shape[1]), np.zeros(z.shape[1])
    for i in range(len(z)):
        if i >= 2:
            a = min(1.0, i / warm)
            out[i] = (z[i] - mean) / (a * np.sqrt(m2 / i).clip(1e-3) + (1 - a) * prior_sd)
        d = z[i] - mean
        mean += d / (i + 1)
        m2 += d * (z[i] - mean)
    return out


class LengthRunning(Head):
    """The length prior on ln_prompt_tokens standardized by the running spread of the traffic
    (the fitted weights as shipped)."""

    def __init__(self, prior=0.5):
        super().__init__(prior=0.0)
        self.p2 = prior

    def score(self, b):
        k = self.feats.index('ln_prompt_tokens')
        z = b['X'][:, cols(self.feats)][:, [k]]
        return super().score(b) + self.p2 * self.spread * running_z(z, self.sz[[k]])[:, 0]


class FeaturePrior(Head):
    """A prior like the length prior on another feature (ln_questions: the one feature whose
    within-task gain correlation is positive in 10 of 10 inspected tasks)."""

    def __init__(self, name, q):
        super().__init__()
        self.name, self.q = name, q

    def fit(self, blocks):
        super().fit(blocks)
        self.w[self.feats.index(self.name)] += self.q * self.spread
        return self


class WithinCentred(Head):
    """Fitted on features and label centred per category / task: only within-task variation
    (mixed `mix` : 1 - mix with the plain fit)."""

    def __init__(self, feats=TF, mix=1.0):
        super().__init__(feats)
        self.mix = mix

    def fit(self, blocks):
        zs, gs, zc, gc, ws = [], [], [], [], []
        for b in blocks:
            lab = gain_label(b['Y'])
            ok = ~np.isnan(lab)
            z, g, c = b['X'][ok][:, cols(self.feats)], lab[ok], b['cat'][ok]
            z2, g2 = z.copy(), g.copy()
            for k in np.unique(c):
                z2[c == k] -= z[c == k].mean(0)
                g2[c == k] -= g[c == k].mean()
            zs.append(z), gs.append(g), zc.append(z2), gc.append(g2), ws.append(np.full(ok.sum(), 1.0 / ok.sum()))
        z, g, z2, g2, w = np.vstack(zs), np.concatenate(gs), np.vstack(zc), np.concatenate(gc), np.concatenate(ws)
        w /= w.sum()
        self.mz, self.sz = w @ z, np.sqrt(w @ (z - w @ z) ** 2).clip(1e-3)

        def ridge(u, t):
            return np.linalg.solve((u * w[:, None]).T @ u + self.l2 * np.eye(u.shape[1]), (u * w[:, None]).T @ (t - w @ t))
        u = (z - self.mz) / self.sz
        self.w = (1 - self.mix) * ridge(u, g) + self.mix * ridge(z2 / self.sz, g2)
        self.spread = np.sqrt(w @ (u @ self.w - w @ (u @ self.w)) ** 2)
        self.w[self.feats.index('ln_prompt_tokens')] += self.prior * self.spread
        return self


class HardnessBlend(Head):
    """Gain head + beta x a difficulty head (ridge of 1 - the row's mean score over all models,
    features and label centred per category), scaled to the gain head's spread."""

    def __init__(self, beta, hfeats=TF):
        super().__init__()
        self.beta, self.hfeats = beta, hfeats

    def fit(self, blocks):
        super().fit(blocks)
        zs, hs = [], []
        for b in blocks:
            h, z = 1 - np.nanmean(b['Y'], 1), b['X'][:, cols(self.hfeats)].copy()
            for k in np.unique(b['cat']):
                m = b['cat'] == k
                h[m] -= h[m].mean()
                z[m] -= z[m].mean(0)
            zs.append(z), hs.append(h)
        z, h = np.vstack(zs), np.concatenate(hs)
        self.hm, self.hs = z.mean(0), z.std(0).clip(1e-3)
        u = (z - self.hm) / self.hs
        self.hw = np.linalg.solve(u.T @ u / len(u) + 0.1 * np.eye(u.shape[1]), u.T @ (h - h.mean()) / len(u))
        self.hsd = (u @ self.hw).std()
        return self

    def score(self, b):
        h = ((b['X'][:, cols(self.hfeats)] - self.hm) / self.hs) @ self.hw
        return super().score(b) + self.beta * self.spread / self.hsd * h


class Random(Head):
    def __init__(self, seed):
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def fit(self, blocks):
        return self

    def score(self, b):
        return self.rng.random(len(b['cat']))


def scenarios(make, B):
    """`transfer_check.sh cross` (head from one data set, the other evaluated) and `heldout`
    (one llmrouter task / mmlu_pro category held out, 3 pairs, head from the other data set,
    the other tasks, or both).  Returns {scenario: (APGR, CPT50)} and the CROSS / HELD means."""
    lm, mmod = B['lm'], B['mmod']
    r = {}

    def one(label, h, b, pair, models):
        x = pm(h.score(b), b['Y'][:, models.index(pair[0])], b['Y'][:, models.index(pair[1])])
        r.setdefault(label, []).append((x['apgr'], x['cpt50']))
    hl, hm = make().fit([B['lrtrain']]), make().fit([B['mm']])
    one('cross lr->mm 8B->pro', hl, B['mm'], MP3[0], mmod)
    one('cross lr->mm 8B->70B', hl, B['mm'], MP3[1], mmod)
    one('cross lr->mm flash->pro', hl, B['mm'], MP3[2], mmod)
    one('cross mm->lrtest gemma', hm, B['lrtest'], LP3[0], lm)
    one('cross mm->lrdedup gemma', hm, B['lrdedup'], LP3[0], lm)
    one('cross mm->lrdedup qwen', hm, B['lrdedup'], LP3[1], lm)
    one('cross mm->lrtrain gemma', hm, B['lrtrain'], LP3[0], lm)
    lrall = B['lrall']
    for t in TASKS:
        m = lrall['cat'] == t
        te, tr = sub(lrall, m), sub(lrall, ~m)
        ho, hb = make().fit([tr]), make().fit([B['mm'], tr])
        for p in LP3:
            one('task from-mm', hm, te, p, lm), one('task from-other', ho, te, p, lm), one('task from-both', hb, te, p, lm)
    for c in CATS:
        m = B['mm']['cat'] == c
        te, tr = sub(B['mm'], m), sub(B['mm'], ~m)
        ho, hb = make().fit([tr]), make().fit([lrall, tr])
        for p in MP3:
            one('cat from-lr', hl, te, p, mmod), one('cat from-other', ho, te, p, mmod), one('cat from-both', hb, te, p, mmod)
    out = {k: np.nanmean(np.array(v), 0) for k, v in r.items()}
    out['CROSS'] = np.mean([v for k, v in out.items() if k.startswith('cross')], 0)
    out['HELD'] = np.mean([v for k, v in out.items() if k.startswith(('task', 'cat'))], 0)
    return out


def per_task(B):
    hl, hm = Head().fit([B['lrtrain']]), Head().fit([B['mm']])
    for b, tasks, other, pairs, models, extra in [(B['lrall'], TASKS, hm, LP3, B['lm'], B['mm']),
                                                  (B['mm'], CATS, hl, MP3, B['mmod'], B['lrall'])]:
        for t in tasks:
            m = b['cat'] == t
            te, tr = sub(b, m), sub(b, ~m)
            heads = [other, Head().fit([tr]), Head().fit([extra, tr])]
            a = np.nanmean([[pm(h.score(te), te['Y'][:, models.index(p[0])], te['Y'][:, models.index(p[1])])[k]
                             for k in ('apgr', 'cpt50')] for h in heads for p in pairs], 0)
            print(f'  {t:18s} {a[0]:.3f} / {a[1] * 100:.1f}%')


def knn_candidates(B):
    """kNN over the static embedding (cosine, similarity-weighted, k neighbours) from the other
    tasks' rows: their gain label, or their difficulty (1 - mean score), for the held-out task."""
    def unit(e):
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-9)

    def knn(etr, v, ete, k):
        sim = unit(ete) @ unit(etr).T
        idx = np.argpartition(-sim, k, axis=1)[:, :k]
        w = np.maximum(np.take_along_axis(sim, idx, 1), 0) + 1e-9
        return (v[idx] * w).sum(1) / w.sum(1)
    for name, b, tasks, pairs, models in [('mmlu_pro categories', B['mm'], CATS, MP3, B['mmod']),
                                          ('llmrouter tasks', B['lrall'], TASKS, LP3, B['lm'])]:
        for k in (20, 100):
            res = {'gain': [], 'difficulty': []}
            for t in tasks:
                m = b['cat'] == t
                te, tr = sub(b, m), sub(b, ~m)
                g = gain_label(tr['Y'])
                ok = ~np.isnan(g)
                for key, s in (('gain', knn(tr['E'][ok], g[ok], te['E'], k)),
                               ('difficulty', knn(tr['E'], 1 - np.nanmean(tr['Y'], 1), te['E'], k))):
                    res[key] += [[pm(s, te['Y'][:, models.index(p[0])], te['Y'][:, models.index(p[1])])[q]
                                  for q in ('apgr', 'cpt50')] for p in pairs]
            print(f'  {name:20s} k={k:<3d} ' + '  '.join(
                f'kNN {key}: {np.nanmean(np.array(v), 0)[0]:.3f} / {np.nanmean(np.array(v), 0)[1] * 100:.1f}%'
                for key, v in res.items()), flush=True)


def correlations(B):
    """Spearman correlation of each feature with the gain label within single tasks."""
    from scipy.stats import spearmanr
    sets = [(B['lrall'], t) for t in ['gsm8k', 'math', 'agentverse-mgsm', 'mmlu', 'gpqa', 'arc_challenge']] + \
        [(B['mm'], c) for c in ['math', 'physics', 'law', 'history']]
    print(f'  {"feature":20s} ' + ' '.join(f'{t[:11]:>11s}' for _, t in sets))
    for j, n in enumerate(FEATS):
        row = []
        for b, t in sets:
            m = b['cat'] == t
            f, g = b['X'][m, j], gain_label(b['Y'][m])
            ok = ~np.isnan(g)
            row.append(spearmanr(f[ok], g[ok]).statistic if f[ok].std() > 0 else np.nan)
        print(f'  {n:20s} ' + ' '.join(f'{v:+11.3f}' for v in row))


def within_task_bound(B):
    """Trained on the held-out task's OWN labels (5-fold CV inside the task, ridge of the gain
    label): the most a linear model on these features can get within a task."""
    rng = np.random.default_rng(1)
    for label, extra in [('transfer features', None), ('transfer + new features', NEW), ('all 33 + new + static embedding', 'E')]:
        for l2 in (1.0, 10.0):
            res = []
            for b, tasks, pairs, models in [(B['lrall'], TASKS, LP3, B['lm']), (B['mm'], CATS, MP3, B['mmod'])]:
                a = []
                for t in tasks:
                    x = sub(b, b['cat'] == t)
                    if extra == 'E':
                        z = np.c_[x['X'], x['E']]
                    else:
                        z = x['X'][:, cols(TF + (extra or []))]
                    g, f, s = gain_label(x['Y']), rng.integers(0, 5, len(z)), np.zeros(len(z))
                    for k in range(5):
                        tr = (f != k) & ~np.isnan(g)
                        mu, sd = z[tr].mean(0), z[tr].std(0).clip(1e-6)
                        u = (z[tr] - mu) / sd
                        w = np.linalg.solve(u.T @ u / len(u) + l2 * np.eye(u.shape[1]), u.T @ (g[tr] - g[tr].mean()) / len(u))
                        s[f == k] = ((z[f == k] - mu) / sd) @ w
                    a += [[pm(s, x['Y'][:, models.index(p[0])], x['Y'][:, models.index(p[1])])[k] for k in ('apgr', 'cpt50')]
                          for p in pairs]
                res.append(np.nanmean(np.array(a), 0))
            print(f'  {label:34s} L2 {l2:<4}: llmrouter tasks {res[0][0]:.3f} / {res[0][1] * 100:.1f}%, '
                  f'mmlu_pro categories {res[1][0]:.3f} / {res[1][1] * 100:.1f}%', flush=True)


def candidates(data, dump):
    lrtrain, lrtest, mm = load(data)
    lm = sorted({m for r in lrtrain for m in r['outcomes']})
    mmod = sorted({m for r in mm for m in r['outcomes']})
    B = dict(lm=lm, mmod=mmod, lrtrain=block(lrtrain, lm, f'{dump}/lrtrain'), lrtest=block(lrtest, lm, f'{dump}/lrtest'),
             mm=block(mm, mmod, f'{dump}/mmlu'))
    seen = {json.dumps(r['messages']) for r in lrtrain}
    B['lrdedup'] = sub(B['lrtest'], np.array([json.dumps(r['messages']) not in seen for r in lrtest]))
    B['lrall'] = join(B['lrtrain'], B['lrtest'])

    def show(name, o, full=False):
        keys = [k for k in o if full or k in ('CROSS', 'HELD')]
        print(f'{name:40s} ' + '  '.join(f'{k} {o[k][0]:.3f} / {o[k][1] * 100:.1f}%' for k in keys), flush=True)
    print('== the shipped transfer head (per scenario; reproduces transfer_check.sh cross / heldout)')
    show('head as shipped', scenarios(Head, B), True)
    print('== the shipped head per held-out task / category (mean of its 3 heads x 3 pairs)')
    per_task(B)
    print('== random scores, 20 draws: mean and spread of the composites (the noise level)')
    rs = [scenarios(lambda s=s: Random(s), B) for s in range(20)]
    for k in ('CROSS', 'HELD'):
        a = np.array([x[k] for x in rs])
        print(f'  {k}: APGR {a[:, 0].mean():.3f} ± {a[:, 0].std():.3f}, CPT50 {a[:, 1].mean() * 100:.1f}% ± {a[:, 1].std() * 100:.1f}')
    print('== candidates (CROSS = mean of the 7 cross scenarios, HELD = mean of the 6 held-out ones)')
    show('head as shipped', scenarios(Head, B))
    for n in NEW:
        show(f'+ {n}', scenarios(lambda n=n: Head(TF + [n]), B))
    show('+ all new features', scenarios(lambda: Head(TF + NEW), B))
    show('running standardization (all features)', scenarios(lambda: Head(stats='running'), B))
    for p in (0.25, 0.5, 1.0):
        show(f'length prior on running spread, {p}', scenarios(lambda p=p: LengthRunning(p), B))
    # the data files are sorted by task, so "earlier rows" are mostly the same task: the same
    # running variants on the rows in a random order (traffic that does not come in task blocks)
    perm = np.random.default_rng(5)
    bs = dict(B)
    for k in ('lrtrain', 'lrtest', 'mm', 'lrdedup', 'lrall'):
        p = perm.permutation(len(B[k]['cat']))
        bs[k] = {kk: v[p] for kk, v in B[k].items()}
    show('running standardization, rows shuffled', scenarios(lambda: Head(stats='running'), bs))
    show('length prior running 0.5, rows shuffled', scenarios(lambda: LengthRunning(0.5), bs))
    for q in (0.25, 0.5, 1.0):
        show(f'ln_questions prior {q}', scenarios(lambda q=q: FeaturePrior('ln_questions', q), B))
    for mix in (0.5, 1.0):
        show(f'within-task centred fit, mix {mix}', scenarios(lambda mix=mix: WithinCentred(TF, mix), B))
        show(f'within-task centred fit + new, mix {mix}', scenarios(lambda mix=mix: WithinCentred(TF + NEW, mix), B))
    for beta in (-0.5, -0.25, 0.25, 0.5, 1.0):
        show(f'difficulty head blend {beta}', scenarios(lambda beta=beta: HardnessBlend(beta), B))
    print('== within-task bound: trained on the held-out task\'s own labels (5-fold CV inside it), 3 pairs each')
    within_task_bound(B)
    print('== kNN over the static embedding, from the other tasks (held-out task, 3 pairs each)')
    knn_candidates(B)
    print('== within-task Spearman correlation of each feature with the gain label (llmrouter tasks, then mmlu_pro)')
    correlations(B)


def subset(data, out, name, tasks):
    import os
    import shutil
    os.makedirs(out, exist_ok=True)
    files = ['outcomes_train.jsonl.gz', 'outcomes_test.jsonl.gz'] if name == 'llmrouter' else ['outcomes.jsonl.gz']
    shutil.copy(f'{data}/{name}/models.json', out)
    with open(f'{out}/outcomes.jsonl', 'w') as o:
        for f in files:
            for line in gzip.open(f'{data}/{name}/{f}', 'rt'):
                if json.loads(line).get('category') in tasks:
                    o.write(line)


def minilm(d, name):
    """Within-task bound of the all-MiniLM-L6-v2 embedding (5-fold CV inside each task, its own
    labels): ridge of the gain label, or kNN (k = 20) of the gain label / difficulty."""
    rows = rows_of(f'{d}/outcomes.jsonl')
    e_all = np.fromfile(f'{d}/x.minilm.f32', dtype='<f4').reshape(len(rows), 384).astype(np.float64)
    e_all /= np.maximum(np.linalg.norm(e_all, axis=1, keepdims=True), 1e-9)
    models = sorted({m for r in rows for m in r['outcomes']})
    y_all, cat = ymat(rows, models), np.array([r.get('category') for r in rows])
    pairs = LP3 if name == 'llmrouter' else MP3
    rng = np.random.default_rng(1)
    for method in ('ridge L2 1', 'ridge L2 10', 'kNN gain', 'kNN difficulty'):
        res = []
        for t in sorted(set(cat)):
            m = cat == t
            e, y = e_all[m], y_all[m]
            g, f, s = gain_label(y), rng.integers(0, 5, m.sum()), np.zeros(m.sum())
            for k in range(5):
                tr = (f != k) & ~np.isnan(g)
                if method.startswith('ridge'):
                    mu, sd = e[tr].mean(0), e[tr].std(0).clip(1e-6)
                    u = (e[tr] - mu) / sd
                    w = np.linalg.solve(u.T @ u / len(u) + float(method.split()[-1]) * np.eye(384),
                                        u.T @ (g[tr] - g[tr].mean()) / len(u))
                    s[f == k] = ((e[f == k] - mu) / sd) @ w
                else:
                    v = g if 'gain' in method else 1 - np.nanmean(y, 1)
                    sim = e[f == k] @ e[tr].T
                    idx = np.argpartition(-sim, 20, axis=1)[:, :20]
                    ww = np.maximum(np.take_along_axis(sim, idx, 1), 0) + 1e-9
                    s[f == k] = (v[tr][idx] * ww).sum(1) / ww.sum(1)
            res += [[pm(s, y[:, models.index(p[0])], y[:, models.index(p[1])])[q] for q in ('apgr', 'cpt50')] for p in pairs]
        a = np.nanmean(np.array(res), 0)
        print(f'  MiniLM, within-task 5-fold, {method:15s} {a[0]:.3f} / {a[1] * 100:.1f}%', flush=True)


if __name__ == '__main__':
    import warnings
    warnings.filterwarnings('ignore')
    if len(sys.argv) == 3 and sys.argv[1] == 'ceiling':
        ceiling(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == 'candidates':
        candidates(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 6 and sys.argv[1] == 'subset':
        subset(sys.argv[2], sys.argv[3], sys.argv[4], set(sys.argv[5:]))
    elif len(sys.argv) == 4 and sys.argv[1] == 'minilm':
        minilm(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
