//! Budgets: UTC day and month windows, reservations and their reconciliation.
//!
//! A call first **reserves** an upper estimate of its cost on every window that limits it (the
//! key's day and month, its team's day and month): one conditional update per window row,
//! `spent + reserved + estimate <= limit`, all in one transaction, so concurrent calls — in one
//! process or on several replicas sharing PostgreSQL — can never hold more than the limit
//! between them. When the call ends it is **reconciled**: the reservation is released and the
//! exact cost added to `spent`. Spend can therefore exceed a limit only by what the calls in
//! flight cost beyond their estimates (the reconciliation error), never by the sum of
//! unreserved estimates.
//!
//! A reservation is reconciled into the windows it was made in, even if the call ends after
//! midnight. A replica that dies between the two steps leaves its reservations held until
//! the window ends (the error is towards refusing, never towards overspending).

use rust_decimal::Decimal;
use serde::Serialize;
use time::{Date, Month, OffsetDateTime, Time};

/// A budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The window of this period containing `now` (UTC): its label and when it ends.
    pub fn window(self, now: OffsetDateTime) -> Window {
        let now = now.to_offset(time::UtcOffset::UTC);
        let date = now.date();
        match self {
            Period::Day => Window {
                label: format!("day:{date}"),
                resets: date
                    .next_day()
                    .unwrap_or(Date::MAX)
                    .with_time(Time::MIDNIGHT)
                    .assume_utc(),
            },
            Period::Month => {
                let (y, m) = (date.year(), date.month());
                let (ny, nm) = if m == Month::December {
                    (y + 1, Month::January)
                } else {
                    (y, m.next())
                };
                Window {
                    label: format!("month:{y:04}-{:02}", u8::from(m)),
                    resets: Date::from_calendar_date(ny, nm, 1)
                        .unwrap_or(Date::MAX)
                        .with_time(Time::MIDNIGHT)
                        .assume_utc(),
                }
            }
        }
    }
}

/// One window of a period: `day:2026-12-07` or `month:2026-12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub label: String,
    /// When the next window starts (UTC).
    pub resets: OffsetDateTime,
}

/// Who a budget belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Key(String),
    Team(String),
}

impl Scope {
    /// The scope column of a window row: `key:ID` or `team:NAME`.
    pub fn column(&self) -> String {
        match self {
            Scope::Key(id) => format!("key:{id}"),
            Scope::Team(name) => format!("team:{name}"),
        }
    }

    /// For messages: `key key_ab12…` or `team research`.
    pub fn describe(&self) -> String {
        match self {
            Scope::Key(id) => format!("key {id}"),
            Scope::Team(name) => format!("team {name}"),
        }
    }
}

/// One limit a call must fit under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub scope: Scope,
    pub period: Period,
    pub usd: Decimal,
}

/// A granted reservation: what to release and where when the call ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// `(scope column, window label)` of every window reserved on.
    pub windows: Vec<(String, String)>,
    /// The reserved estimate.
    pub amount: Decimal,
    /// The least headroom left over the windows after this reservation.
    pub remaining: Decimal,
}

/// The answer to a reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    Granted(Reservation),
    /// The first limit the estimate does not fit under.
    Exceeded {
        limit: Limit,
        spent: Decimal,
        reserved: Decimal,
        resets: OffsetDateTime,
    },
}

/// Spend of one window, for `keys show` and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowSpend {
    pub window: String,
    pub spent: Decimal,
    pub reserved: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn windows_are_utc_days_and_months() {
        let t = datetime!(2026-12-31 23:59:59 -01:00); // 2027-01-01 00:59:59 UTC
        let d = Period::Day.window(t);
        assert_eq!(d.label, "day:2027-01-01");
        assert_eq!(d.resets, datetime!(2027-01-02 0:00 UTC));
        let m = Period::Month.window(datetime!(2026-12-07 22:00 UTC));
        assert_eq!(m.label, "month:2026-12");
        assert_eq!(m.resets, datetime!(2027-01-01 0:00 UTC));
        let m = Period::Month.window(datetime!(2026-02-28 22:00 UTC));
        assert_eq!(m.label, "month:2026-02");
        assert_eq!(m.resets, datetime!(2026-03-01 0:00 UTC));
    }
}
