//! Membership events as log events with fields (who, incarnation, epoch).

use crate::membership::{Event, LeftReason, Membership};

pub(super) fn name_of(m: &Membership, id: u16) -> String {
    m.members()
        .iter()
        .find(|i| i.id == id)
        .map_or_else(|| format!("id {id}"), |i| format!("{} (id {id})", i.name))
}

/// One log event per membership event, with the member, incarnation and
/// epoch as fields (`SHOAL_LOG`, see `shoal-log`).
pub(super) fn log_event(m: &Membership, e: &Event) {
    match e {
        Event::Joined {
            member,
            incarnation,
        } => tracing::info!(member = %name_of(m, *member), incarnation, "member joined"),
        Event::Restarted {
            member,
            incarnation,
        } => tracing::info!(member = %name_of(m, *member), incarnation, "member restarted"),
        Event::Left {
            member,
            reason: LeftReason::Silent(ms),
        } => {
            tracing::warn!(member = %name_of(m, *member), silent_ms = ms, "member removed: silent");
        }
        Event::Left {
            member,
            reason: LeftReason::Leaving,
        } => tracing::info!(member = %name_of(m, *member), "member left (shutting down)"),
        Event::EpochChanged {
            previous,
            epoch,
            table_changed,
        } => {
            let live: Vec<String> = m
                .epoch()
                .table
                .iter()
                .filter(|e| e.alive)
                .map(|e| {
                    let mut s = name_of(m, e.id);
                    if e.draining {
                        s.push_str(" draining");
                    }
                    s
                })
                .collect();
            tracing::info!(
                previous,
                epoch,
                adopted_from_peer = !table_changed,
                live = %live.join(", "),
                "epoch changed"
            );
        }
        Event::SettingChanged(s) => tracing::info!(
            member = %name_of(m, s.member),
            weight = s.weight,
            draining = s.draining,
            "member settings changed"
        ),
    }
}
