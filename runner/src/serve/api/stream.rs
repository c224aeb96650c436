//! The streaming routes: a release's events as server-sent events (`id` = line number of
//! `events.jsonl`, `Last-Event-ID` resumes after it), and a task's `script_output.log`
//! (`?follow=1` streams new lines while the release moves). With a shared store both come
//! from its rows (`id` = the event's `seq`), so a server on any machine streams them.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::output::paths;
use crate::serve::api::ApiError;
use crate::serve::auth::Caller;
use crate::serve::state::AppState;
use crate::store::{ReleaseStatus, Store, journal, shared};

/// How often a followed file is looked at: one `read` of what was appended, cheap enough at
/// 50 ms per open stream, and most of an event's way to the page (the p95 of the UI bench).
const POLL: Duration = Duration::from_millis(50);
/// How long a stream goes on after its release stopped moving (late lines of a runner that
/// is ending, a person answering right away).
const LINGER: Duration = Duration::from_secs(10);

/// Whether a release may still write: a runner holds it or its status says it runs.
fn is_moving(state_dir: &Path, release: &str) -> bool {
    Store::open_read_only(state_dir).is_ok_and(|store| is_moving_in(&store, release))
}

fn is_moving_in(store: &Store, release: &str) -> bool {
    let running = store
        .release(release)
        .is_ok_and(|r| matches!(r.status, ReleaseStatus::Running | ReleaseStatus::Planned));
    running || store.lease_holder(release).ok().flatten().is_some()
}

/// What a stream follows: a file of the state directory, or a shared store's rows.
enum Source {
    File(Tail),
    /// A release's events after `seq` number `after`.
    Events {
        release: String,
        after: i64,
    },
    /// A task run's log lines after line id `after`.
    Log {
        task_run: i64,
        after: i64,
    },
}

impl Source {
    /// The lines that came since the last call, numbered (line number, or `seq`); and
    /// whether the release still moves, asked only when nothing came.
    fn poll(&mut self, store: &Store, release: &str) -> (Vec<(u64, String)>, bool) {
        let lines: Vec<(u64, String)> = match self {
            Source::File(_) => Vec::new(),
            Source::Events { release, after } => {
                let events = store.events_after(release, *after).unwrap_or_default();
                if let Some((seq, _)) = events.last() {
                    *after = *seq;
                }
                events
                    .into_iter()
                    .map(|(seq, body)| (u64::try_from(seq).unwrap_or(0), body))
                    .collect()
            }
            Source::Log { task_run, after } => {
                let lines = store.log_lines_after(*task_run, *after).unwrap_or_default();
                if let Some(last) = lines.last() {
                    *after = last.id;
                }
                lines
                    .into_iter()
                    .map(|l| (u64::try_from(l.id).unwrap_or(0), l.line))
                    .collect()
            }
        };
        let moving = lines.is_empty() && is_moving_in(store, release);
        (lines, moving)
    }
}

/// Complete lines appended to a file since the last call (a torn last line waits).
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    fn new_lines(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        String::from_utf8_lossy(&complete)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Sends each new line of `source` after number `after` until the release has stopped
/// moving for [`LINGER`] or the receiver is gone.
async fn follow(
    state: AppState,
    release: String,
    source: Source,
    after: u64,
    send: mpsc::Sender<(u64, String)>,
) {
    let mut still_since: Option<Instant> = None;
    let mut number = 0u64;
    let state_dir = state.state_dir().to_path_buf();
    let mut source = Some(source);
    // A shared store: one connection for the whole stream, used off the async threads.
    let mut store: Option<Store> = None;
    loop {
        if state.is_stopping() {
            return;
        }
        let (lines, moving) = match source.as_mut() {
            Some(Source::File(tail)) => {
                let lines: Vec<(u64, String)> = tail
                    .new_lines()
                    .into_iter()
                    .map(|line| {
                        number += 1;
                        (number, line)
                    })
                    .collect();
                let moving = match lines.is_empty() {
                    true => {
                        let (dir, id) = (state_dir.clone(), release.clone());
                        tokio::task::spawn_blocking(move || is_moving(&dir, &id))
                            .await
                            .unwrap_or(false)
                    }
                    false => true,
                };
                (lines, moving)
            }
            Some(_) => {
                let (dir, id) = (state_dir.clone(), release.clone());
                let (mut taken, opened) = (source.take(), store.take());
                let polled = tokio::task::spawn_blocking(move || {
                    let Some(store) = opened.or_else(|| Store::open_read_only(&dir).ok()) else {
                        // The store is out of reach for now: looked at again next time.
                        return (taken, None, (Vec::new(), true));
                    };
                    let found = match taken.as_mut() {
                        Some(source) => source.poll(&store, &id),
                        None => (Vec::new(), false),
                    };
                    (taken, Some(store), found)
                })
                .await;
                let Ok((taken, opened, found)) = polled else {
                    return;
                };
                (source, store) = (taken, opened);
                found
            }
            None => return,
        };
        let had_lines = !lines.is_empty();
        for (number, line) in lines {
            if number > after && send.send((number, line)).await.is_err() {
                return;
            }
        }
        if had_lines || moving {
            still_since = None;
        } else if still_since.get_or_insert_with(Instant::now).elapsed() >= LINGER {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn known_release(state: &AppState, id: &str) -> Result<(), ApiError> {
    let id = id.to_string();
    state
        .reading(move |store| Ok(store.release(&id).map(drop)?))
        .await
}

/// Follows `source` on a task of its own; the lines come out as a stream of `T`.
fn follow_stream<T: Send + 'static>(
    state: AppState,
    release: String,
    source: Source,
    after: u64,
    make: fn(u64, String) -> T,
) -> impl futures_util::Stream<Item = Result<T, Infallible>> + Send {
    let (tx, rx) = mpsc::channel::<(u64, String)>(64);
    tokio::spawn(follow(state, release, source, after, tx));
    futures_util::stream::unfold(rx, move |mut rx| async move {
        rx.recv()
            .await
            .map(|(number, line)| (Ok(make(number, line)), rx))
    })
}

/// `GET /releases/{id}/events`: one server-sent event per line of `events.jsonl`.
pub async fn events(
    _caller: Caller,
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    known_release(&state, &id).await?;
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let source = match shared::selected() {
        Some(_) => Source::Events {
            release: id.clone(),
            after: i64::try_from(after).unwrap_or(i64::MAX),
        },
        None => Source::File(Tail::new(paths::events_file(state.state_dir(), &id))),
    };
    let events = follow_stream(state.clone(), id, source, after, |number, line| {
        Event::default().id(number.to_string()).data(line)
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    attempt: Option<u32>,
    #[serde(default)]
    follow: u8,
}

/// `GET /releases/{id}/logs/{phase_run}/{task}?attempt=N&follow=1`: a task's log as text.
pub async fn log(
    _caller: Caller,
    State(state): State<AppState>,
    UrlPath((id, phase_run, task)): UrlPath<(String, String, String)>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let (release, label, name) = (id.clone(), phase_run.clone(), task.clone());
    // Only a phase run and task the release has: the names never reach the file system raw.
    let task_run = state
        .reading(move |store| {
            let phases = store.phase_runs(&release)?;
            let runs = store.task_runs(&release)?;
            let found = runs.iter().find(|t| {
                t.task == name
                    && phases
                        .iter()
                        .any(|p| p.id == t.phase_run_id && p.label() == label)
            });
            match found {
                Some(run) => Ok(run.id),
                None => Err(ApiError::not_found(format!(
                    "release {release} has no task `{name}` in phase run `{label}`"
                ))),
            }
        })
        .await?;
    let is_shared = shared::selected().is_some();
    let path = paths::script_log(state.state_dir(), &id, &phase_run, &task);
    let text = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
    if query.follow == 0 {
        let log = match is_shared {
            true => {
                state
                    .reading(move |store| {
                        Ok(journal::text_of(&store.log_lines_after(task_run, 0)?))
                    })
                    .await?
            }
            false => std::fs::read_to_string(&path).unwrap_or_default(),
        };
        let body = match query.attempt {
            None => log,
            Some(n) => crate::output::script_log::attempt_section(&log, n).ok_or_else(|| {
                ApiError::not_found(format!("task `{task}` has no attempt {n} in `{phase_run}`"))
            })?,
        };
        return Ok((text, body).into_response());
    }
    let source = match is_shared {
        true => Source::Log { task_run, after: 0 },
        false => Source::File(Tail::new(path)),
    };
    let lines = follow_stream(state.clone(), id, source, 0, |_, line| line + "\n");
    Ok((text, Body::from_stream(lines)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_waits_for_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "one\ntw").unwrap();
        let mut tail = Tail::new(path.clone());
        assert_eq!(tail.new_lines(), ["one"]);
        assert!(tail.new_lines().is_empty());
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(tail.new_lines(), ["two", "three"]);
    }
}
