//! `LISTEN` for `NOTIFY`s: one connection per process and set of channels, on a thread of its
//! own, handing each (channel, payload) to every subscriber's callback. After a reconnect, and
//! after each quiet second, subscribers are called with an empty channel (notices may have
//! been missed; and a subscriber that is gone says so by returning `false`, which drops it).
//! A worker driving many releases thus holds one listening connection, not one per release.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use postgres::Client;

use super::DbError;
use super::pg::{connect, describe};
use super::pg_url::{PgUrl, Settings};

type OnNotice = Box<dyn Fn(&str, &str) -> bool + Send>;
type Subscribers = Arc<Mutex<Vec<OnNotice>>>;

/// The listening connections of this process, by URL and channels.
static HUBS: OnceLock<Mutex<HashMap<String, Subscribers>>> = OnceLock::new();

/// A subscription to `NOTIFY`s (see the module docs).
pub struct Listener;

impl Listener {
    /// Calls `on_notice` for each notice on `channels` of the database at `url` until it
    /// returns `false`.
    pub fn start(
        url: &PgUrl,
        channels: &[&str],
        on_notice: impl Fn(&str, &str) -> bool + Send + 'static,
    ) -> Result<Listener, DbError> {
        let key = format!("{}#{}", url.key(), channels.join(","));
        let mut hubs = HUBS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let subscribers = match hubs.get(&key) {
            Some(subscribers) => subscribers.clone(),
            None => {
                let subscribers = start_hub(url, channels)?;
                hubs.insert(key, subscribers.clone());
                subscribers
            }
        };
        subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(on_notice));
        Ok(Listener)
    }
}

/// Connects, listens, and serves the subscribers on a thread of its own.
fn start_hub(url: &PgUrl, channels: &[&str]) -> Result<Subscribers, DbError> {
    let settings = url.settings()?;
    let listen: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
    let address = url.clone();
    let subscribers: Subscribers = Arc::default();
    let served = subscribers.clone();
    let (connected, outcome) = mpsc::sync_channel::<Result<(), DbError>>(1);
    // Connected on its own thread, like every connection (the caller may be async).
    std::thread::Builder::new()
        .name("relflow-listen".into())
        .spawn(move || {
            let client = connect(&address, &settings).and_then(|mut client| {
                client
                    .batch_execute(&listen)
                    .map_err(|e| DbError::Postgres {
                        message: describe(&e),
                        conflict: false,
                    })?;
                Ok(client)
            });
            match client {
                Ok(client) => {
                    let _ = connected.send(Ok(()));
                    let tell = |channel: &str, payload: &str| {
                        served
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .retain(|on_notice| on_notice(channel, payload));
                    };
                    listen_loop(&address, &settings, client, &listen, &tell);
                }
                Err(e) => {
                    let _ = connected.send(Err(e));
                }
            }
        })
        .map_err(|e| DbError::ConnectionLost(format!("cannot start a thread: {e}")))?;
    outcome
        .recv()
        .map_err(|_| DbError::ConnectionLost(format!("{url}: the listening thread ended")))??;
    Ok(subscribers)
}

/// Waits for notices for ever, listening again on a new connection when one is lost.
fn listen_loop(
    url: &PgUrl,
    settings: &Settings,
    mut client: Client,
    listen: &str,
    tell: &dyn Fn(&str, &str),
) {
    use postgres::fallible_iterator::FallibleIterator;
    loop {
        let failed = {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_secs(1));
            loop {
                match iter.next() {
                    Ok(Some(n)) => tell(n.channel(), n.payload()),
                    // A quiet second: subscribers that are gone drop out.
                    Ok(None) => {
                        tell("", "");
                        break false;
                    }
                    Err(_) => break true,
                }
            }
        };
        if !failed && !client.is_closed() {
            continue;
        }
        // Listen again on a new connection; notices may have been missed meanwhile.
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if let Ok(mut fresh) = connect(url, settings)
                && fresh.batch_execute(listen).is_ok()
            {
                client = fresh;
                break;
            }
            tell("", "");
        }
        tell("", "");
    }
}
