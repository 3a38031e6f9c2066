//! Asking the person before a mutation, in both MCP protocol generations.
//!
//! Up to protocol 2025-11-25 the server sends an elicitation request and waits for the answer.
//! From 2026-07-28 (stateless: no server-to-client requests) the tool answers with an
//! input-required result and the client retries the call with the person's answer. The retry
//! must carry the request state this server issued for exactly that action (a one-time token),
//! so an answer cannot be replayed onto another action or forged without being asked.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationSchema, InputRequest, InputRequests, InputRequiredResult,
    InputResponses,
};
use rmcp::service::{ElicitationError, RequestContext};
use serde::{Deserialize, Serialize};

/// What the person is asked: go ahead or not.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Confirm {
    /// true to execute the action.
    pub confirm: bool,
}
rmcp::elicit_safe!(Confirm);

/// The key of the confirmation in an input-required round trip.
const KEY: &str = "confirm";

/// The person's answer, or what is needed to get it.
pub enum Answer {
    Yes,
    /// Declined, cancelled or answered no; the words say which.
    No(String),
    /// Stateless protocol: return this and wait for the retry.
    Ask(InputRequiredResult),
    /// The client cannot ask a person.
    Unsupported,
}

/// One-time tokens issued for pending confirmations: token → what it confirms.
#[derive(Default)]
pub struct Pending(Mutex<BTreeMap<String, String>>);

impl Pending {
    fn issue(&self, what: &str) -> String {
        let mut bytes = [0u8; 16];
        // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer it is given.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        let token = if n == bytes.len() as isize {
            hex::encode(bytes)
        } else {
            // No kernel randomness: a token that is still unique per process, if guessable.
            format!("{:x}-{}", std::process::id(), std::time::UNIX_EPOCH.elapsed().map(|d| d.as_nanos()).unwrap_or(0))
        };
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 1024 {
            map.pop_first();
        }
        map.insert(token.clone(), what.to_string());
        token
    }

    fn redeem(&self, token: &str, what: &str) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(token).is_some_and(|w| w == what)
    }
}

/// Asks the person to confirm `what` (a stable description of the action, which the retry of
/// the stateless protocol must match), showing `message`.
pub async fn ask(
    ctx: &RequestContext<RoleServer>,
    pending: &Pending,
    state: Option<&str>,
    responses: Option<&InputResponses>,
    what: &str,
    message: &str,
) -> Answer {
    if let Some(answer) = responses.and_then(|r| r.get(KEY)) {
        if !state.is_some_and(|s| pending.redeem(s, what)) {
            return Answer::No("the answer does not belong to a confirmation this server asked for".into());
        }
        return match answer["action"].as_str() {
            Some("accept") if answer["content"][KEY] == true => Answer::Yes,
            Some("accept") => Answer::No("the person answered no".into()),
            Some("decline") => Answer::No("the person declined".into()),
            Some("cancel") => Answer::No("the person cancelled".into()),
            _ => Answer::No("the answer was neither accept, decline nor cancel".into()),
        };
    }
    if ctx.client_capabilities().and_then(|c| c.elicitation).is_none() {
        return Answer::Unsupported;
    }
    let stateless = ctx.protocol_version().is_some_and(|v| !v.has_initialize());
    if stateless {
        let schema = match ElicitationSchema::from_type::<Confirm>() {
            Ok(s) => s,
            Err(e) => return Answer::No(format!("cannot describe the question: {e}")),
        };
        let mut requests = InputRequests::new();
        requests.insert(
            KEY.to_string(),
            InputRequest::Elicitation(ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: message.to_string(),
                requested_schema: schema,
            })),
        );
        return Answer::Ask(InputRequiredResult::new(Some(requests), Some(pending.issue(what))));
    }
    match ctx.peer.elicit::<Confirm>(message.to_string()).await {
        Ok(Some(Confirm { confirm: true })) => Answer::Yes,
        Ok(_) => Answer::No("the person answered no".into()),
        Err(ElicitationError::UserDeclined) => Answer::No("the person declined".into()),
        Err(ElicitationError::UserCancelled) => Answer::No("the person cancelled".into()),
        Err(ElicitationError::CapabilityNotSupported) => Answer::Unsupported,
        Err(e) => Answer::No(format!("asking the person failed: {e}")),
    }
}
