//! The bot: command router and conversation flow, as a `tower::Service` over the updates the
//! intake delivers and the gate lets through.

mod usage;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::Config;
use crate::conversation::Conversations;
use crate::intake::{Delivery, Receipt};
use crate::openai::{Role, Turn};
use crate::store::usage::UsageStore;
use crate::telegram::format::{self, TELEGRAM_LIMIT};
use crate::telegram::{Bot, BotCommand, Message, ParseMode, User};
use crate::telemetry::reference_id;
use crate::texts;

/// How often "typing…" is re-sent while the model works (Telegram shows it for ~5 s).
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// Turns shown by `/history`.
const HISTORY_TURNS: usize = 10;
/// Characters of one turn shown by `/history`.
const HISTORY_TURN_CHARS: usize = 600;

/// Everything the bot needs, shared by all updates.
pub struct App {
    pub config: Config,
    pub telegram: Bot,
    pub conversations: Conversations,
    pub usage: UsageStore,
}

/// The commands Telegram shows in the menu.
pub fn menu() -> Vec<BotCommand> {
    [
        ("help", "What this bot does, and privacy"),
        ("reset", "Start a new conversation"),
        ("history", "The last exchanges"),
        ("export", "The whole conversation as a file"),
        ("usage", "Tokens you have used"),
        ("subscribe", "Check your subscription now"),
    ]
    .into_iter()
    .map(|(command, description)| BotCommand {
        command: command.into(),
        description: description.into(),
    })
    .collect()
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
        let Some(text) = message.text.as_deref().filter(|t| !t.trim().is_empty()) else {
            self.say(chat, texts::TEXT_ONLY).await;
            return;
        };
        match message.command() {
            Some(("start" | "help", _)) => {
                self.say(
                    chat,
                    &texts::help(&self.config, self.config.is_admin(user.id)),
                )
                .await
            }
            Some(("subscribe", _)) => self.say(chat, &texts::subscribed(&self.config)).await,
            Some(("reset", _)) => self.reset(chat, user).await,
            Some(("history", _)) => self.history(chat, user).await,
            Some(("export", _)) => self.export(chat, user).await,
            Some(("usage", _)) => self.usage_report(chat, user).await,
            Some(("stats", _)) => self.stats(chat, user).await,
            Some(_) => self.say(chat, texts::UNKNOWN_COMMAND).await,
            None => self.converse(chat, user, text, receipt).await,
        }
    }

    /// Sends one of the bot's own HTML messages (short, written by us).
    pub async fn say(&self, chat: i64, html: &str) {
        if let Err(e) = self.telegram.send_html(chat, html).await {
            tracing::error!(error = %e, "could not send a message");
        }
    }

    /// Sends Markdown from the model as Telegram HTML parts, each re-sent as plain text if
    /// Telegram refuses its formatting.
    pub async fn send_markdown(&self, chat: i64, markdown: &str) {
        for part in format::render(markdown, TELEGRAM_LIMIT) {
            match self
                .telegram
                .send_message(chat, &part.html, Some(ParseMode::Html))
                .await
            {
                Err(e) if e.is_parse_error() => {
                    tracing::warn!(error = %e, "Telegram refused the formatting; sending plain text");
                    if let Err(e) = self.telegram.send_message(chat, &part.plain, None).await {
                        tracing::error!(error = %e, "could not send an answer part");
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not send an answer part"),
                Ok(()) => {}
            }
        }
    }

    async fn converse(&self, chat: i64, user: &User, text: &str, receipt: &Receipt) {
        if let Some(refusal) = self.over_limit(user).await {
            tracing::info!("daily token limit reached");
            self.say(chat, &refusal).await;
            return;
        }
        let typing = self.keep_typing(chat);
        let started = std::time::Instant::now();
        let result = self.conversations.reply(user.id, text, receipt).await;
        drop(typing);
        match result {
            Ok(reply) => {
                tracing::info!(
                    tokens = reply.total_tokens,
                    ms = started.elapsed().as_millis() as u64,
                    "answered"
                );
                self.record_usage(user, reply.total_tokens);
                self.send_markdown(chat, &reply.text).await;
            }
            Err(e) => {
                let reference = reference_id();
                tracing::error!(error = %e, reference, "no answer from OpenAI");
                self.say(chat, &texts::apology(&reference)).await;
            }
        }
    }

    /// Sends "typing…" now and every few seconds until the returned guard is dropped.
    fn keep_typing(&self, chat: i64) -> AbortOnDrop {
        let telegram = self.telegram.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                if let Err(e) = telegram.send_chat_action(chat, "typing").await {
                    tracing::debug!(error = %e, "typing action failed");
                }
                tokio::time::sleep(TYPING_EVERY).await;
            }
        }))
    }

    async fn reset(&self, chat: i64, user: &User) {
        match self.conversations.reset(user.id).await {
            Ok(()) => self.say(chat, texts::RESET_DONE).await,
            Err(e) => self.apologise(chat, &e).await,
        }
    }

    async fn history(&self, chat: i64, user: &User) {
        match self
            .conversations
            .history(user.id, Some(HISTORY_TURNS))
            .await
        {
            Ok(turns) if turns.is_empty() => self.say(chat, texts::NOTHING_YET).await,
            Ok(turns) => {
                let shown: Vec<String> = turns
                    .iter()
                    .map(|t| history_entry(t, HISTORY_TURN_CHARS))
                    .collect();
                let markdown = format!(
                    "**The last exchanges of this conversation**\n\n{}",
                    shown.join("\n\n")
                );
                self.send_markdown(chat, &markdown).await;
            }
            Err(e) => self.apologise(chat, &e).await,
        }
    }

    async fn export(&self, chat: i64, user: &User) {
        match self.conversations.history(user.id, None).await {
            Ok(turns) if turns.is_empty() => self.say(chat, texts::NOTHING_YET).await,
            Ok(turns) => {
                let document = export_document(&turns);
                let name = format!("conversation-{}.md", chrono::Utc::now().format("%Y-%m-%d"));
                let caption = format!("Your conversation: {} messages.", turns.len());
                if let Err(e) = self
                    .telegram
                    .send_document(chat, &name, document.into_bytes(), &caption)
                    .await
                {
                    self.apologise(chat, &e).await;
                }
            }
            Err(e) => self.apologise(chat, &e).await,
        }
    }

    async fn apologise(&self, chat: i64, error: &(dyn std::fmt::Display + Sync)) {
        let reference = reference_id();
        tracing::error!(error = %error, reference, "command failed");
        self.say(chat, &texts::apology(&reference)).await;
    }
}

/// Ends a background task when dropped, however the owner's scope is left.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn speaker(role: Role) -> &'static str {
    match role {
        Role::User => "You",
        Role::Assistant => "Assistant",
    }
}

/// One turn for `/history`: who, and the text cut to `max` characters.
fn history_entry(turn: &Turn, max: usize) -> String {
    let mut text: String = turn.text.chars().take(max).collect();
    if text.len() < turn.text.len() {
        text.push('…');
    }
    format!("**{}:** {}", speaker(turn.role), text)
}

/// The whole conversation as a Markdown document.
fn export_document(turns: &[Turn]) -> String {
    let mut doc = String::from("# Conversation\n");
    for turn in turns {
        doc.push_str(&format!(
            "\n## {}\n\n{}\n",
            speaker(turn.role),
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
        let entry = history_entry(&turn, 600);
        assert!(entry.starts_with("**You:** "));
        assert!(entry.ends_with('…'));
        assert_eq!(entry.chars().filter(|c| *c == 'ü').count(), 600);
    }
}
