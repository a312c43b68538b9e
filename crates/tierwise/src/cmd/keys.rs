//! `tierwise keys create|list|show|update|revoke` and `tierwise teams create|update|list`: the
//! admin API's operations, straight on the store (the config's `[store]`, or `--store`).
//!
//! Bad input — a malformed amount, a negative budget, an unknown team or tier, a bad date, a
//! database that cannot be reached — is one line on stderr and exit 2.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use rust_decimal::Decimal;
use serde_json::json;
use tierwise_core::Config;
use tierwise_store::budget::Scope;
use tierwise_store::keys::{KeyRecord, KeyUpdate, Limits, NewKey, Team, TeamUpdate};
use tierwise_store::{Location, Store, WriterOptions};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::{KeyCreateArgs, KeyIdArgs, KeyLimitArgs, KeyUpdateArgs, StoreArgs, TeamArgs};
use crate::output::{self, Status};

/// The config (for tier names) and the store it names.
fn open(args: &StoreArgs) -> anyhow::Result<(Config, Arc<dyn Store>, tokio::runtime::Runtime)> {
    let config = super::load_config(args.config.as_deref())?;
    let location = match (&args.store, &config.store.url) {
        (Some(s), _) => Location::parse(s),
        (None, Some(url)) => Location::Postgres(url.expose().to_string()),
        (None, None) => Location::Sqlite(config.log.path.clone()),
    };
    let store = tierwise_store::open(&location, WriterOptions::default()).context("store")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok((config, store, rt))
}

/// `X`, or `none` (→ `Some(None)`: clear).
fn clearable<T>(
    v: Option<&str>,
    parse: impl Fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<Option<Option<T>>> {
    match v {
        None => Ok(None),
        Some("none") => Ok(Some(None)),
        Some(s) => parse(s).map(|x| Some(Some(x))),
    }
}

fn money(flag: &'static str) -> impl Fn(&str) -> anyhow::Result<Decimal> {
    move |s| {
        let d = Decimal::from_str(s.trim())
            .map_err(|_| anyhow!("--{flag}: {s:?} is not a decimal amount in USD"))?;
        if d.is_sign_negative() && !d.is_zero() {
            bail!("--{flag}: a budget cannot be negative ({s})");
        }
        Ok(d)
    }
}

fn positive(flag: &'static str) -> impl Fn(&str) -> anyhow::Result<u64> {
    move |s| {
        s.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("--{flag}: {s:?} is not a positive integer"))
    }
}

fn tier<'a>(config: &'a Config) -> impl Fn(&str) -> anyhow::Result<String> + 'a {
    move |t| {
        let names: Vec<_> = config
            .catalog
            .tiers()
            .iter()
            .map(|x| x.name.as_str())
            .collect();
        if names.contains(&t) {
            Ok(t.to_string())
        } else {
            bail!("unknown tier {t:?} (tiers: {})", names.join(", "))
        }
    }
}

fn limit_update(config: &Config, a: &KeyLimitArgs) -> anyhow::Result<KeyUpdate> {
    let tier = tier(config);
    Ok(KeyUpdate {
        name: None,
        team: clearable(a.team.as_deref(), |s| Ok(s.to_string()))?,
        budget_usd_day: clearable(a.budget_usd_day.as_deref(), money("budget-usd-day"))?,
        budget_usd_month: clearable(a.budget_usd_month.as_deref(), money("budget-usd-month"))?,
        rpm: clearable(a.rpm.as_deref(), positive("rpm"))?,
        tpm: clearable(a.tpm.as_deref(), positive("tpm"))?,
        tiers: clearable(a.tiers.as_deref(), |s| {
            s.split(',')
                .map(|t| tier(t.trim()).context("--tiers"))
                .collect()
        })?,
        max_tier: clearable(a.max_tier.as_deref(), |s| tier(s).context("--max-tier"))?,
        expires: clearable(a.expires.as_deref(), |s| {
            OffsetDateTime::parse(s, &Rfc3339)
                .map_err(|_| anyhow!("--expires: {s:?} is not an RFC 3339 time"))
        })?,
    })
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), ToString::to_string)
}

fn key_table(keys: &[KeyRecord]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header([
        "id", "name", "key", "team", "$/day", "$/month", "rpm", "tpm", "tiers", "max tier",
        "status",
    ]);
    let now = OffsetDateTime::now_utc();
    for k in keys {
        t.add_row([
            k.id.clone(),
            k.name.clone(),
            format!("{}…", k.prefix),
            opt(&k.team),
            opt(&k.limits.budget_usd_day),
            opt(&k.limits.budget_usd_month),
            opt(&k.limits.rpm),
            opt(&k.limits.tpm),
            k.tiers.as_ref().map_or("all".into(), |t| t.join(",")),
            opt(&k.max_tier),
            k.refusal(now).unwrap_or("active").to_string(),
        ]);
    }
    t.to_string()
}

fn team_table(teams: &[Team]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(["team", "$/day", "$/month"]);
    for team in teams {
        t.add_row([
            team.name.clone(),
            opt(&team.budget_usd_day),
            opt(&team.budget_usd_month),
        ]);
    }
    t.to_string()
}

fn close(store: &Arc<dyn Store>) {
    if let Err(e) = store.log().close() {
        output::note(&format!("warning: {e}"));
    }
}

pub fn create(args: KeyCreateArgs) -> anyhow::Result<Status> {
    let (config, store, rt) = open(&args.store)?;
    let u = limit_update(&config, &args.limits)?;
    let new = NewKey {
        name: args.name,
        team: u.team.flatten(),
        limits: Limits {
            budget_usd_day: u.budget_usd_day.flatten(),
            budget_usd_month: u.budget_usd_month.flatten(),
            rpm: u.rpm.flatten(),
            tpm: u.tpm.flatten(),
        },
        tiers: u.tiers.flatten(),
        max_tier: u.max_tier.flatten(),
        expires: u.expires.flatten(),
    };
    let created = rt.block_on(store.create_key(new))?;
    close(&store);
    if args.store.json {
        let mut v = json!(created.record);
        v["key"] = json!(created.secret);
        output::json(&v)?;
    } else {
        output::out(&key_table(std::slice::from_ref(&created.record)));
        output::out(&format!(
            "key: {}\n(shown once: only its hash is stored)",
            created.secret
        ));
    }
    Ok(Status::Success)
}

pub fn list(args: StoreArgs) -> anyhow::Result<Status> {
    let (_, store, rt) = open(&args)?;
    let keys = rt.block_on(store.keys())?;
    close(&store);
    if args.json {
        output::json(&keys)?;
    } else {
        output::out(&key_table(&keys));
    }
    Ok(Status::Success)
}

pub fn show(args: KeyIdArgs) -> anyhow::Result<Status> {
    let (_, store, rt) = open(&args.store)?;
    let key = rt
        .block_on(store.key(&args.id))?
        .ok_or_else(|| anyhow!("no key named {}", args.id))?;
    let spend = rt.block_on(store.spend(Scope::Key(args.id.clone())))?;
    close(&store);
    if args.store.json {
        let mut v = json!(key);
        v["spend"] = json!(spend);
        output::json(&v)?;
    } else {
        output::out(&key_table(std::slice::from_ref(&key)));
        for w in spend {
            output::out(&format!(
                "{}: spent ${}, held ${}",
                w.window,
                w.spent.normalize(),
                w.reserved.normalize()
            ));
        }
    }
    Ok(Status::Success)
}

pub fn update(args: KeyUpdateArgs) -> anyhow::Result<Status> {
    let (config, store, rt) = open(&args.store)?;
    let mut u = limit_update(&config, &args.limits)?;
    u.name = args.name;
    let key = rt.block_on(store.update_key(&args.id, u))?;
    close(&store);
    if args.store.json {
        output::json(&key)?;
    } else {
        output::out(&key_table(&[key]));
    }
    Ok(Status::Success)
}

pub fn revoke(args: KeyIdArgs) -> anyhow::Result<Status> {
    let (_, store, rt) = open(&args.store)?;
    let key = rt.block_on(store.revoke_key(&args.id, OffsetDateTime::now_utc()))?;
    close(&store);
    if args.store.json {
        output::json(&key)?;
    } else {
        output::out(&key_table(&[key]));
    }
    Ok(Status::Success)
}

fn team_budgets(a: &TeamArgs) -> anyhow::Result<TeamUpdate> {
    Ok(TeamUpdate {
        budget_usd_day: clearable(a.budget_usd_day.as_deref(), money("budget-usd-day"))?,
        budget_usd_month: clearable(a.budget_usd_month.as_deref(), money("budget-usd-month"))?,
    })
}

pub fn team_create(args: TeamArgs) -> anyhow::Result<Status> {
    let (_, store, rt) = open(&args.store)?;
    let team = rt.block_on(store.create_team(&args.name, team_budgets(&args)?))?;
    close(&store);
    if args.store.json {
        output::json(&team)?;
    } else {
        output::out(&team_table(&[team]));
    }
    Ok(Status::Success)
}

pub fn team_update(args: TeamArgs) -> anyhow::Result<Status> {
    let (_, store, rt) = open(&args.store)?;
    let team = rt.block_on(store.update_team(&args.name, team_budgets(&args)?))?;
    close(&store);
    if args.store.json {
        output::json(&team)?;
    } else {
        output::out(&team_table(&[team]));
    }
    Ok(Status::Success)
}

pub fn team_list(args: StoreArgs) -> anyhow::Result<Status> {
    let (_, store, rt) = open(&args)?;
    let teams = rt.block_on(store.teams())?;
    close(&store);
    if args.json {
        output::json(&teams)?;
    } else {
        output::out(&team_table(&teams));
    }
    Ok(Status::Success)
}
