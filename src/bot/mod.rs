//! The bot: command router and conversation flow, as a `tower::Service` over the updates the
//! intake delivers and the gate lets through.

mod menu;
mod settle;
mod usage;

pub use menu::{menu, register_menus};
pub use settle::Settler;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use crate::config::Config;
use crate::conversation::{ConversationError, Conversations};
use crate::intake::{Delivery, Receipt};
use crate::openai::{Role, Turn};
use crate::reply::Replier;
use crate::store::usage::UsageStore;
use crate::telegram::{Bot, Message, User};
use crate::telemetry::reference_id;
use crate::texts::{self, Lang, t};

/// Turns shown by `/history`.
const HISTORY_TURNS: usize = 10;
/// Characters of one turn shown by `/history`.
const HISTORY_TURN_CHARS: usize = 600;

/// Everything the bot needs, shared by all updates.
pub struct App {
    pub config: Config,
    pub telegram: Bot,
    pub reply: Replier,
    pub conversations: Conversations,
    pub usage: UsageStore,
    /// Keeps cut-off answers' usage until OpenAI says how their responses ended.
    pub settler: Settler,
}

/// The bot as a service over updates that passed the gate.
#[derive(Clone)]
pub struct BotService {
    app: Arc<App>,
}

impl BotService {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        BotService { app }
    }
}

impl tower::Service<Delivery> for BotService {
    type Response = ();
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<(), Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, delivery: Delivery) -> Self::Future {
        let app = Arc::clone(&self.app);
        Box::pin(async move {
            if let Some(message) = delivery.update.private_message() {
                app.handle(message, &delivery.receipt).await;
            }
            Ok(())
        })
    }
}

impl App {
    async fn handle(&self, message: &Message, receipt: &Receipt) {
        let Some(user) = message.from.as_ref() else {
            return;
        };
        let chat = message.chat.id;
        let lang = self.lang(user);
        let Some(text) = message.text.as_deref().filter(|t| !t.trim().is_empty()) else {
            self.say(chat, &t(lang, "text_only", &[])).await;
            return;
        };
        match message.command() {
            Some(("start" | "help", _)) => {
                self.say(
                    chat,
                    &texts::help(lang, &self.config, self.config.is_admin(user.id)),
                )
                .await
            }
            Some(("subscribe", _)) => {
                self.say(chat, &texts::subscribed(lang, &self.config.gate))
                    .await
            }
            Some(("reset", _)) => self.reset(chat, user).await,
            Some(("history", _)) => self.history(chat, user).await,
            Some(("export", _)) => self.export(chat, user).await,
            Some(("usage", _)) => self.usage_report(chat, user).await,
            Some(("stats", _)) => self.stats(chat, user).await,
            Some(_) => self.say(chat, &t(lang, "unknown_command", &[])).await,
            None => self.converse(chat, user, text, receipt).await,
        }
    }

    /// The language of the bot's texts for `user` (`BOT_LANGUAGE` and their `language_code`).
    pub fn lang(&self, user: &User) -> Lang {
        Lang::pick(self.config.bot.language, user.language_code.as_deref())
    }

    /// Sends one of the bot's own HTML messages (short, written by us).
    pub async fn say(&self, chat: i64, html: &str) {
        self.reply.say(chat, html).await;
    }

    async fn converse(&self, chat: i64, user: &User, text: &str, receipt: &Receipt) {
        if let Some(refusal) = self.over_limit(user).await {
            tracing::info!("daily token limit reached");
            self.say(chat, &refusal).await;
            return;
        }
        let started = std::time::Instant::now();
        // "typing…" until the first draft shows (or, without drafts, until the answer).
        let mut typing = Some(self.reply.keep_typing(chat));
        let mut live = self.reply.live(chat);
        let result = match &mut live {
            Some(live) => {
                let mut on_text = |so_far: &str| {
                    typing.take();
                    live.update(so_far);
                };
                self.conversations
                    .reply_live(user.id, text, receipt, &mut on_text)
                    .await
            }
            // Boxed: the unstreamed answer's future is the larger one, and inline it would
            // set the size of every answer's future, streamed or not.
            None => Box::pin(self.conversations.reply(user.id, text, receipt)).await,
        };
        drop(typing);
        drop(live);
        match result {
            Ok(reply) => {
                tracing::info!(
                    tokens = reply.usage.and_then(|u| u.total_tokens()),
                    model = reply.model.as_deref(),
                    ms = started.elapsed().as_millis() as u64,
                    "answered"
                );
                self.record_usage(user, text, &reply);
                self.reply.answer(chat, &reply.text).await;
            }
            Err(ConversationError::Interrupted {
                partial,
                reason,
                unsettled,
            }) => {
                let reference = reference_id();
                tracing::error!(
                    reason,
                    reference,
                    chars = partial.text.chars().count(),
                    "the answer was cut off"
                );
                metrics::counter!("subgpt_answers_cut_off_total").increment(1);
                match unsettled {
                    Some(id) => {
                        let row = self.usage_row(user, text, &partial);
                        self.settler.hold(&id, row).await;
                    }
                    None => self.record_usage(user, text, &partial),
                }
                if !partial.text.trim().is_empty() {
                    let note = t(self.lang(user), "cut_off", &[]);
                    let cut = format!("{}\n\n{note}", partial.text.trim_end());
                    self.reply.answer(chat, &cut).await;
                }
                self.say(chat, &texts::apology(self.lang(user), &reference))
                    .await;
            }
            Err(e) => {
                let reference = reference_id();
                tracing::error!(error = %e, reference, "no answer from OpenAI");
                self.say(chat, &texts::apology(self.lang(user), &reference))
                    .await;
            }
        }
    }

    async fn reset(&self, chat: i64, user: &User) {
        match self.conversations.reset(user.id).await {
            Ok(()) => self.say(chat, &t(self.lang(user), "reset_done", &[])).await,
            Err(e) => self.apologise(chat, user, &e).await,
        }
    }

    async fn history(&self, chat: i64, user: &User) {
        let lang = self.lang(user);
        match self
            .conversations
            .history(user.id, Some(HISTORY_TURNS))
            .await
        {
            Ok(turns) if turns.is_empty() => self.say(chat, &t(lang, "nothing_yet", &[])).await,
            Ok(turns) => {
                let shown: Vec<String> = turns
                    .iter()
                    .map(|turn| history_entry(lang, turn, HISTORY_TURN_CHARS))
                    .collect();
                let markdown = format!(
                    "**{}**\n\n{}",
                    t(lang, "history.heading", &[]),
                    shown.join("\n\n")
                );
                self.reply.answer(chat, &markdown).await;
            }
            Err(e) => self.apologise(chat, user, &e).await,
        }
    }

    async fn export(&self, chat: i64, user: &User) {
        let lang = self.lang(user);
        match self.conversations.history(user.id, None).await {
            Ok(turns) if turns.is_empty() => self.say(chat, &t(lang, "nothing_yet", &[])).await,
            Ok(turns) => {
                let document = export_document(lang, &turns);
                let name = format!("conversation-{}.md", chrono::Utc::now().format("%Y-%m-%d"));
                let messages = texts::plural(lang, "plural.messages", turns.len() as i64);
                let caption = t(lang, "export.caption", &[("messages", &messages)]);
                if let Err(e) = self
                    .telegram
                    .send_document(chat, &name, document.into_bytes(), &caption)
                    .await
                {
                    self.apologise(chat, user, &e).await;
                }
            }
            Err(e) => self.apologise(chat, user, &e).await,
        }
    }

    async fn apologise(&self, chat: i64, user: &User, error: &(dyn std::fmt::Display + Sync)) {
        let reference = reference_id();
        tracing::error!(error = %error, reference, "command failed");
        self.say(chat, &texts::apology(self.lang(user), &reference))
            .await;
    }
}

fn speaker(lang: Lang, role: Role) -> String {
    match role {
        Role::User => t(lang, "history.you", &[]),
        Role::Assistant => t(lang, "history.assistant", &[]),
    }
}

/// One turn for `/history`: who, and the text cut to `max` characters.
fn history_entry(lang: Lang, turn: &Turn, max: usize) -> String {
    let mut text: String = turn.text.chars().take(max).collect();
    if text.len() < turn.text.len() {
        text.push('…');
    }
    format!("**{}:** {}", speaker(lang, turn.role), text)
}

/// The whole conversation as a Markdown document.
fn export_document(lang: Lang, turns: &[Turn]) -> String {
    let mut doc = format!("# {}\n", t(lang, "export.heading", &[]));
    for turn in turns {
        doc.push_str(&format!(
            "\n## {}\n\n{}\n",
            speaker(lang, turn.role),
            turn.text.trim_end()
        ));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_entries_are_cut_on_characters() {
        let turn = Turn {
            role: Role::User,
            text: "ü".repeat(700),
        };
        let entry = history_entry(Lang::default_language(), &turn, 600);
        assert!(entry.starts_with("**You:** "));
        assert!(entry.ends_with('…'));
        assert_eq!(entry.chars().filter(|c| *c == 'ü').count(), 600);
    }
}
