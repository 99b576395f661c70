//! The subscription gate: a `tower::Layer` that lets an update reach the bot only when its
//! sender is subscribed to the gating channel(s), and keeps the decision cache fresh from
//! `chat_member` updates.

mod channel;
mod check;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

pub use channel::{Channel, ChannelPolicy};
pub use check::{Decision, Gate, Source};

use crate::intake::Delivery;
use crate::reply::Replier;
use crate::telegram::Update;
use crate::texts::{self, Lang, t};

/// Wraps a service so only subscribers' updates reach it.
#[derive(Clone)]
pub struct GateLayer {
    gate: Arc<Gate>,
    reply: Replier,
}

impl GateLayer {
    /// The layer around `gate`, answering refused users through `reply`.
    pub fn new(gate: Arc<Gate>, reply: Replier) -> Self {
        GateLayer { gate, reply }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = GateService<S>;
    fn layer(&self, inner: S) -> GateService<S> {
        GateService {
            gate: Arc::clone(&self.gate),
            reply: self.reply.clone(),
            inner,
        }
    }
}

/// The gate around an update service.
#[derive(Clone)]
pub struct GateService<S> {
    gate: Arc<Gate>,
    reply: Replier,
    inner: S,
}

impl<S> Service<Delivery> for GateService<S>
where
    S: Service<Delivery, Response = (), Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = ();
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<(), Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, delivery: Delivery) -> Self::Future {
        let gate = Arc::clone(&self.gate);
        let reply = self.reply.clone();
        // The clone is the one that was polled ready; keep a fresh clone for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            // Boxed, so the check's future is freed before the bot runs instead of being
            // held beside it for the whole answer.
            if Box::pin(gate.admit(&delivery.update, &reply)).await {
                inner.call(delivery).await
            } else {
                Ok(())
            }
        })
    }
}

impl Gate {
    /// Decides whether `update` goes on to the bot; answers the user itself when not.
    async fn admit(&self, update: &Update, reply: &Replier) -> bool {
        if let Some(change) = &update.chat_member {
            self.observe(change).await;
            return false;
        }
        if let Some(change) = &update.my_chat_member {
            self.observe_bot(change);
            return false;
        }
        let Some(message) = update.private_message() else {
            return true;
        };
        let Some(user) = message.from.as_ref() else {
            return true;
        };
        let chat = message.chat.id;
        let lang = Lang::pick(self.bot().language, user.language_code.as_deref());
        let command = message.command().map(|(name, _)| name);
        if matches!(command, Some("start" | "help")) {
            return true;
        }
        let fresh = command == Some("subscribe");
        // An admin is let through unchecked, except when asking about their subscription: that
        // gets the true answer (and changes nothing else for them).
        if self.bot().is_admin(user.id) && !fresh {
            self.count(Decision::Allowed, Source::Admin);
            return true;
        }
        let (decision, source) = self.check(user.id, fresh).await;
        self.count(decision, source);
        if decision != Decision::Allowed {
            tracing::info!(?decision, ?source, "not let through the gate");
        }
        match decision {
            // `/subscribe` from a subscriber is answered by the bot, which lists what they can do.
            Decision::Allowed => true,
            Decision::Refused => {
                reply
                    .say(chat, &texts::not_subscribed(lang, self.config()))
                    .await;
                false
            }
            Decision::Unknown => {
                reply.say(chat, &t(lang, "cannot_verify", &[])).await;
                false
            }
            Decision::Misconfigured => {
                reply.say(chat, &t(lang, "gate_misconfigured", &[])).await;
                false
            }
        }
    }
}
