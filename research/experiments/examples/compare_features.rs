//! Compares feature groups of the learned router on the shared data (not shipped data: pass its
//! folder). For each feature set: mmlu_pro 5-fold CV (pair and 4-tier ladder), llmrouter →
//! mmlu_pro, mmlu_pro (+ llmrouter train) → llmrouter test; APGR / CPT50 / CPT80 / savings@95.
//!
//! `cargo run --release -p tierwise-research --example compare_features -- ../shared/data/routing [FEATURES...]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a developer tool: prints its table, may unwrap"
)]

use std::path::PathBuf;
use std::time::Instant;

use tierwise_eval::data::{self, Dataset};
use tierwise_eval::ladder::{Ladder, sweep};
use tierwise_eval::learn::{self, Source};
use tierwise_eval::metrics::metrics;
use tierwise_eval::report;
use tierwise_router::learned::features::{EmbeddingSpec, FeatureSpec};
use tierwise_router::learned::model::EstimateForm;
use tierwise_train::router::TrainOptions;

fn load(p: PathBuf, split: Option<&str>) -> Dataset {
    data::load(&p, split, &mut |_| {}).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    })
}

fn line(name: &str, ladder: &Ladder, est: &[Vec<f64>]) -> String {
    let r = report::reference(ladder);
    let m = metrics(&sweep(ladder, est), &r);
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    format!(
        "{name:<44} APGR {} CPT50 {} CPT80 {} sav95 {}",
        f(m.apgr),
        f(m.cpt50),
        f(m.cpt80),
        f(m.savings_at_95)
    )
}

/// Gain form: estimate_k = 1 − (P_top − P_k): "how little is lost by stopping at tier k".
fn gain(est: &[Vec<f64>]) -> Vec<Vec<f64>> {
    est.iter()
        .map(|e| {
            let top = e.last().copied().unwrap_or(0.0);
            e.iter().map(|p| (1.0 - (top - p)).min(1.0)).collect()
        })
        .collect()
}

fn both(name: &str, ladder: &Ladder, est: &[Vec<f64>]) {
    println!("{}", line(name, ladder, est));
    println!("{}", line(&format!("{name} [gain]"), ladder, &gain(est)));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "../shared/data/routing".into()),
    );
    let feature_sets: Vec<String> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        [
            "signals",
            "lexical",
            "signals,lexical",
            "ngrams",
            "signals,lexical,ngrams",
            "embed",
            "signals,lexical,embed",
            "all",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let l2: f64 = std::env::var("L2")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1e-3);
    let l2d: f64 = std::env::var("L2D")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1e-3);
    let dev: Option<f64> = std::env::var("DEV")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v > 0.0);
    let opts = TrainOptions {
        l2_hash: l2,
        l2_dense: l2d,
        l2_model: dev,
        ..TrainOptions::default()
    };
    let mm = load(root.join("mmlu_pro"), None);
    let lr_train = load(root.join("llmrouter"), Some("train"));
    let lr_test = load(root.join("llmrouter"), Some("test"));
    let lr_all = load(root.join("llmrouter"), None);
    let emb = tierwise_embed::Embedder::load(&PathBuf::from(
        "router/embed/tokenlearn-static-model-0.1.1",
    ))
    .ok();
    let embed_fn = emb.as_ref().map(|e| move |t: &str| e.embed(t));
    let embed: Option<learn::Embed<'_>> = embed_fn.as_ref().map(|f| f as learn::Embed<'_>);
    let espec = emb.as_ref().map(|e| EmbeddingSpec {
        name: e.name().to_string(),
        dim: e.dim(),
    });
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mm_pair = s(&["Meta-Llama-3_1-8B-Instruct", "gemini-1.5-pro-002"]);
    let mm_4 = s(&[
        "Meta-Llama-3_1-8B-Instruct",
        "gemini-1.5-flash-002",
        "Meta-Llama-3_1-70B-Instruct",
        "gemini-1.5-pro-002",
    ]);
    let lr_pair = s(&["gemma-2-9b-it", "llama-3.1-nemotron-51b-instruct"]);
    let lr_3 = s(&[
        "gemma-2-9b-it",
        "llama-3.1-8b-instruct",
        "llama-3.1-nemotron-51b-instruct",
    ]);
    let lad_mm2 = Ladder::new(&mm, &mm_pair).unwrap_or_else(|e| panic!("{e}"));
    let lad_mm4 = Ladder::new(&mm, &mm_4).unwrap_or_else(|e| panic!("{e}"));
    let lad_lr2 = Ladder::new(&lr_test, &lr_pair).unwrap_or_else(|e| panic!("{e}"));
    let lad_lr3 = Ladder::new(&lr_test, &lr_3).unwrap_or_else(|e| panic!("{e}"));
    for fs in &feature_sets {
        let Ok(spec) = FeatureSpec::parse(fs, espec.clone()) else {
            println!("skip {fs}");
            continue;
        };
        println!(
            "== features {} (l2 ngrams {l2}, dense {l2d}, per-model {dev:?})",
            spec.label()
        );
        let t = Instant::now();
        for (name, lad) in [
            ("mmlu_pro 5-fold CV, 8B→pro", &lad_mm2),
            ("mmlu_pro 5-fold CV, 4 tiers", &lad_mm4),
        ] {
            let out = learn::cross_validate(
                &mm,
                lad,
                &spec,
                EstimateForm::Quality,
                embed,
                &opts,
                5,
                |_| {},
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let est: Vec<Vec<f64>> = out.into_iter().map(|o| o.1).collect();
            both(name, lad, &est);
        }
        let cv_secs = t.elapsed().as_secs_f64();
        // llmrouter (all) → mmlu_pro, positional abilities
        let (m_lr, _) = learn::fit_model(
            &[Source {
                ds: &lr_all,
                rows: (0..lr_all.rows.len()).collect(),
            }],
            &spec,
            embed,
            &opts,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (name, lad) in [
            ("llmrouter → mmlu_pro 8B→pro", &lad_mm2),
            ("llmrouter → mmlu_pro 4 tiers", &lad_mm4),
        ] {
            let (_, est, _) = learn::estimates(&m_lr, EstimateForm::Quality, &mm, lad, embed);
            both(name, lad, &est);
        }
        // mmlu_pro + llmrouter train → llmrouter test (abilities known for llmrouter models)
        let t2 = Instant::now();
        let srcs = [
            Source {
                ds: &mm,
                rows: (0..mm.rows.len()).collect(),
            },
            Source {
                ds: &lr_train,
                rows: (0..lr_train.rows.len()).collect(),
            },
        ];
        let (m_both, rep) =
            learn::fit_model(&srcs, &spec, embed, &opts).unwrap_or_else(|e| panic!("{e}"));
        let fit_secs = t2.elapsed().as_secs_f64();
        for (name, lad) in [
            ("mmlu+lr_train → lr test, gemma→nemo51", &lad_lr2),
            ("mmlu+lr_train → lr test, 3 tiers", &lad_lr3),
        ] {
            let (_, est, _) =
                learn::estimates(&m_both, EstimateForm::Quality, &lr_test, lad, embed);
            both(name, lad, &est);
        }
        // mmlu_pro only → llmrouter test
        let (m_mm, _) = learn::fit_model(
            &[Source {
                ds: &mm,
                rows: (0..mm.rows.len()).collect(),
            }],
            &spec,
            embed,
            &opts,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (_, est, _) = learn::estimates(&m_mm, EstimateForm::Quality, &lr_test, &lad_lr2, embed);
        both("mmlu_pro → lr test, gemma→nemo51", &lad_lr2, &est);
        println!(
            "   (cv {cv_secs:.1}s; fit on {} rows {fit_secs:.1}s, {} iters)",
            rep.rows, rep.iterations
        );
    }
}
