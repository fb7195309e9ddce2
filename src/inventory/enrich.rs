//! Activity rows: a credential use or tool call with the inventory as it stood at its time.

use super::{CredentialStatus, Inventory};
use crate::engine::tables::{Activity, CallScopes};
use crate::event::{Body, Event, Micros};

/// The activity tables of one window, filled as its events are applied.
#[derive(Debug, Default)]
pub struct WindowActivity {
    pub activity: Activity,
    pub call_scopes: CallScopes,
    /// Rows appended so far.
    pub rows: usize,
}

impl WindowActivity {
    /// Tables sized for a handful of rows, for the few events a window receives early.
    pub fn small() -> Self {
        WindowActivity {
            activity: Activity::with_capacity(4),
            call_scopes: CallScopes::with_capacity(4),
            rows: 0,
        }
    }
}

impl Inventory {
    /// Appends `event` (already applied) to its window's activity tables, if it is a
    /// credential use or tool call.
    pub fn enrich(
        &self,
        event: &Event,
        seq: u64,
        window: (Micros, Micros),
        out: &mut WindowActivity,
    ) {
        let (credential, tool_call, used) = match &event.body {
            Body::CredentialUsed(used) => (Some(used.credential.as_str()), None, Some(used)),
            Body::ToolCalled(call) => (call.credential.as_deref(), Some(call), None),
            _ => return,
        };
        let Some(name) = event.identity.as_deref() else {
            return;
        };
        let identity = self.identities.get(name);
        let cred = credential.and_then(|c| self.credentials.get(c));
        let owner = cred.and_then(|c| self.identities.get(&c.identity));
        let offboarded = identity.is_some_and(|i| i.offboarded_at.is_some());
        let has_baseline = identity.is_some_and(|i| i.baseline_scopes.is_some());
        let approved_tools = identity.and_then(|i| i.baseline_tools.as_ref());

        let a = &mut out.activity;
        a.window_start.append_value(window.0);
        a.window_end.append_value(window.1);
        a.seq.append_value(seq);
        a.event_id.append_value(&event.id);
        a.time.append_value(event.time);
        a.event_type.append_value(event.event_type().as_str());
        a.identity.append_value(name);
        a.credential.append_option(credential);
        a.credential_identity
            .append_option(cred.map(|c| &*c.identity));
        a.credential_kind
            .append_option(cred.map(|c| c.kind.as_str()));
        a.credential_status.append_option(
            cred.map(|c| c.status_at(event.time))
                .map(CredentialStatus::as_str),
        );
        a.credential_owner_offboarded
            .append_option(owner.map(|o| o.offboarded_at.is_some()));
        a.tool.append_option(tool_call.map(|c| c.tool.as_str()));
        a.sensitivity
            .append_option(tool_call.map(|c| c.sensitivity.as_str()));
        a.approval
            .append_option(tool_call.and_then(|c| c.approval.as_deref()));
        a.task
            .append_option(tool_call.and_then(|c| c.task.as_deref()));
        a.session
            .append_option(tool_call.and_then(|c| c.session.as_deref()));
        a.vendor
            .append_option(tool_call.and_then(|c| c.vendor.as_deref()));
        a.outcome
            .append_option(tool_call.and_then(|c| c.outcome.map(|o| o.as_str())));
        let (workload, environment) = match (used, tool_call) {
            (Some(u), _) => (u.workload.as_deref(), u.environment.as_deref()),
            (_, Some(c)) => (c.workload.as_deref(), c.environment.as_deref()),
            _ => (None, None),
        };
        a.workload.append_option(workload);
        a.environment.append_option(environment);
        a.source_ip
            .append_option(used.and_then(|u| u.source_ip.as_deref()));
        a.identity_kind
            .append_option(identity.and_then(|i| i.kind).map(|k| k.as_str()));
        a.identity_tier
            .append_option(identity.map(|i| i.tier.as_str()));
        a.identity_approved
            .append_value(identity.is_some_and(|i| i.approved_at.is_some()));
        a.identity_offboarded.append_value(offboarded);
        a.has_baseline.append_value(has_baseline);
        a.tools_checked.append_value(approved_tools.is_some());
        a.tool_approved.append_option(
            tool_call
                .zip(approved_tools)
                .map(|(c, tools)| tools.contains(&c.tool)),
        );
        out.rows += 1;

        let Some(call) = tool_call else { return };
        for scope in &call.scopes {
            let s = &mut out.call_scopes;
            s.window_start.append_value(window.0);
            s.window_end.append_value(window.1);
            s.seq.append_value(seq);
            s.event_id.append_value(&event.id);
            s.time.append_value(event.time);
            s.identity.append_value(name);
            s.scope.append_value(scope);
            s.has_baseline.append_value(has_baseline);
            s.in_baseline
                .append_value(identity.is_some_and(|i| i.in_baseline(scope)));
            s.granted
                .append_value(identity.is_some_and(|i| i.grants.contains_key(scope)));
            s.identity_offboarded.append_value(offboarded);
        }
    }
}
