//! Asking the person before a mutation, in both MCP protocol generations.
//!
//! Up to protocol 2025-11-25 the server sends an elicitation request and waits for the answer.
//! From 2026-07-28 (stateless: no server-to-client requests) the tool answers with an
//! input-required result and the client retries the call with the person's answer. The retry
//! must carry the request state this server issued for exactly that action (a one-time token that
//! expires after two minutes and is spent by its first use, accepted or not), so an answer cannot
//! be replayed onto another action or later, nor forged without being asked.
//!
//! What this cannot prove is that a person, not the client itself, answered: the client shows
//! the question. docs/security.md says so.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
/// How long a question stays open, in either protocol generation.
const OPEN_FOR: Duration = Duration::from_secs(120);

/// The person's answer, or what is needed to get it.
pub enum Answer {
    /// Yes; in the stateless protocol, with who asked when the question was put.
    Yes(Option<String>),
    /// Declined, cancelled or answered no; the words say which.
    No(String),
    /// Stateless protocol: return this and wait for the retry.
    Ask(InputRequiredResult),
    /// The client cannot ask a person.
    Unsupported,
}

/// A question asked in the stateless protocol, waiting for the retry that answers it.
struct Question {
    /// What it confirms (subject, region, store).
    what: String,
    /// Who asked, as the person was told (recorded with the answer).
    who: String,
    asked: Instant,
}

/// One-time tokens issued for pending confirmations.
#[derive(Default)]
pub struct Pending(Mutex<BTreeMap<String, Question>>);

impl Pending {
    fn issue(&self, what: &str, who: &str) -> String {
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
        map.retain(|_, q| q.asked.elapsed() < OPEN_FOR);
        if map.len() >= 1024
            && let Some(oldest) = map.iter().min_by_key(|(_, q)| q.asked).map(|(t, _)| t.clone())
        {
            map.remove(&oldest);
        }
        map.insert(token.clone(), Question { what: what.into(), who: who.into(), asked: Instant::now() });
        token
    }

    /// Spends the token: who asked, if it was issued for `what` and is still open.
    fn redeem(&self, token: &str, what: &str) -> Option<String> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(token).filter(|q| q.what == what && q.asked.elapsed() < OPEN_FOR).map(|q| q.who)
    }
}

/// The answer a retried call carries, if any: the token is spent here, before anything else
/// (a gate refusal included) can leave it open for a later replay.
pub fn answered(
    pending: &Pending,
    state: Option<&str>,
    responses: Option<&InputResponses>,
    what: &str,
) -> Option<Answer> {
    let answer = responses.and_then(|r| r.get(KEY))?;
    let Some(who) = state.and_then(|s| pending.redeem(s, what)) else {
        return Some(Answer::No(
            "the answer does not belong to an open confirmation this server asked for (or it expired)".into(),
        ));
    };
    Some(match answer["action"].as_str() {
        Some("accept") if answer["content"][KEY] == true => Answer::Yes(Some(who)),
        Some("accept") => Answer::No("the person answered no".into()),
        Some("decline") => Answer::No("the person declined".into()),
        Some("cancel") => Answer::No("the person cancelled".into()),
        _ => Answer::No("the answer was neither accept, decline nor cancel".into()),
    })
}

/// Asks the person to confirm `what` (a stable description of the action, which the retry of
/// the stateless protocol must match), showing `message`; `who` is the client as shown.
pub async fn ask(ctx: &RequestContext<RoleServer>, pending: &Pending, what: &str, who: &str, message: &str) -> Answer {
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
        return Answer::Ask(InputRequiredResult::new(Some(requests), Some(pending.issue(what, who))));
    }
    match ctx.peer.elicit_with_timeout::<Confirm>(message.to_string(), Some(OPEN_FOR)).await {
        Ok(Some(Confirm { confirm: true })) => Answer::Yes(None),
        Ok(_) => Answer::No("the person answered no".into()),
        Err(ElicitationError::UserDeclined) => Answer::No("the person declined".into()),
        Err(ElicitationError::UserCancelled) => Answer::No("the person cancelled".into()),
        Err(ElicitationError::CapabilityNotSupported) => Answer::Unsupported,
        Err(e) => Answer::No(format!("asking the person failed: {e}")),
    }
}
