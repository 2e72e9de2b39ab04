//! The control socket: a Unix domain socket serving [`crate::protocol`] requests.
//!
//! The socket is created with mode 0600 (owner only; the umask is narrowed around `bind`, so there
//! is no window with wider permissions). A stale socket file left by a crashed daemon is replaced;
//! a live one (another daemon answers) is refused. Every connection runs in its own task with a
//! frame read timeout, so a slow or stuck client never blocks another. An idle connection holds
//! no serving slot: a slot is taken when a request's first byte arrives and freed once its
//! response is written, so at most [`MAX_CONNECTIONS`] requests are read and answered at once
//! and a started frame must be complete within 10 s. At most [`MAX_OPEN`] connections are
//! open at once; one more is answered with a `busy` error and closed at once, so a client never
//! hangs on a full daemon. Malformed, truncated, oversized or wrong-version frames get an error
//! reply (when a reply can be framed) and the connection is closed; the daemon carries on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::handle::{TrainerHandle, VersionSel};
use crate::protocol::{
    decode_body, encode_frame, ErrorCode, Request, RequestBody, Response, ResponseBody, MAX_FRAME,
    PROTOCOL_VERSION,
};
use crate::types::JobId;
use crate::Error;

/// Requests read and answered at once; more wait for a free slot.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections open at once (idle ones included); one more is refused with an error frame.
pub const MAX_OPEN: usize = 1024;
/// Most job ids or model names one request may list.
pub const MAX_LISTED: usize = 1024;
/// Time a client has to send the rest of a frame once it started one.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Time to write a response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the control socket at `path` with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                match trainer::error::file_in_the_way(parent) {
                    Some(file) => std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        format!("{} is a file, not a directory", file.display()),
                    ),
                    None => e,
                }
            })?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is served by another running trainerd", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Narrow the umask around bind so the socket is never reachable with wider permissions.
    // SAFETY: umask only swaps the process file-mode mask; it has no memory-safety preconditions.
    let old = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let std_listener = bound?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std_listener.set_nonblocking(true)?;
    UnixListener::from_std(std_listener)
}

/// Serves connections until `stop` turns true. A `Shutdown` request is answered, then reported on
/// `shutdown`.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    handle: TrainerHandle,
    shutdown: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    tracing::info!(socket = %path.display(), "control socket listening");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut stream, _)) => {
                    let handle = handle.clone();
                    let shutdown = shutdown.clone();
                    let slots = slots.clone();
                    let Ok(held) = open.clone().try_acquire_owned() else {
                        tracing::warn!(open = MAX_OPEN, "control: too many connections; refusing one");
                        tokio::spawn(async move {
                            let busy = Response::err(
                                ErrorCode::Busy,
                                format!("too many open connections ({MAX_OPEN}); try again"),
                            );
                            let _ = send(&mut stream, &busy).await;
                        });
                        continue;
                    };
                    tokio::spawn(async move {
                        connection(stream, handle, shutdown, slots).await;
                        drop(held);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = std::fs::remove_file(&path);
    tracing::info!(socket = %path.display(), "control socket closed");
}

async fn send(stream: &mut UnixStream, response: &Response) -> bool {
    let frame = match encode_frame(response) {
        Ok(f) => f,
        Err(e) => match encode_frame(&Response::err(ErrorCode::Failed, e)) {
            Ok(f) => f,
            Err(_) => return false,
        },
    };
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&frame)).await,
        Ok(Ok(()))
    )
}

async fn connection(
    mut stream: UnixStream,
    handle: TrainerHandle,
    shutdown: mpsc::Sender<()>,
    slots: Arc<Semaphore>,
) {
    loop {
        let mut len = [0u8; 4];
        // Waiting for a request holds no slot; its first byte takes one, and the rest of the
        // frame must follow within FRAME_TIMEOUT.
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut len[..1])).await {
            Ok(Ok(_)) => {}
            _ => return, // closed or idle
        }
        let Ok(_slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match tokio::time::timeout(FRAME_TIMEOUT, stream.read_exact(&mut len[1..])).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return, // closed inside the length
            Err(_) => {
                tracing::warn!("control: length not completed in time; closing");
                let _ = send(
                    &mut stream,
                    &Response::err(ErrorCode::Malformed, "frame not completed in time"),
                )
                .await;
                return;
            }
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            tracing::warn!(len, "control: oversized frame refused");
            let _ = send(
                &mut stream,
                &Response::err(
                    ErrorCode::TooLarge,
                    format!("frame of {len} bytes exceeds {MAX_FRAME}"),
                ),
            )
            .await;
            return;
        }
        let mut body = vec![0u8; len];
        match tokio::time::timeout(FRAME_TIMEOUT, stream.read_exact(&mut body)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                tracing::warn!(len, "control: truncated frame");
                return;
            }
            Err(_) => {
                tracing::warn!(len, "control: frame not completed in time; closing");
                let _ = send(
                    &mut stream,
                    &Response::err(ErrorCode::Malformed, "frame not completed in time"),
                )
                .await;
                return;
            }
        }
        let request: Request = match decode_body(&body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "control: malformed frame");
                let _ = send(
                    &mut stream,
                    &Response::err(ErrorCode::Malformed, format!("cannot decode request: {e}")),
                )
                .await;
                return;
            }
        };
        if request.protocol != PROTOCOL_VERSION {
            let msg = format!(
                "protocol {} not supported (this daemon speaks {PROTOCOL_VERSION})",
                request.protocol
            );
            let _ = send(&mut stream, &Response::err(ErrorCode::Version, msg)).await;
            return;
        }
        let is_shutdown = matches!(request.body, RequestBody::Shutdown);
        let response = answer(&handle, request.body).await;
        if !send(&mut stream, &response).await {
            return;
        }
        if is_shutdown {
            let _ = shutdown.send(()).await;
        }
    }
}

fn failure(e: Error) -> Response {
    let code = match &e {
        Error::UnknownModel(_) | Error::NoActiveModel(_) | Error::NoSuchVersion(..) => {
            ErrorCode::NotFound
        }
        Error::ShuttingDown | Error::Escalated(_) => ErrorCode::ShuttingDown,
        Error::Core(trainer::Error::Model(_)) => ErrorCode::Invalid,
        _ => ErrorCode::Failed,
    };
    Response::err(code, e.to_string())
}

/// Refuses a request listing more than [`MAX_LISTED`] items.
fn check_listed(what: &str, n: usize) -> Result<(), Error> {
    if n > MAX_LISTED {
        return Err(Error::Core(trainer::Error::Model(format!(
            "{n} {what} in one request; at most {MAX_LISTED}"
        ))));
    }
    Ok(())
}

/// Queues `models` (every enabled model when empty; a name listed twice is queued once).
async fn train(handle: &TrainerHandle, models: Vec<String>) -> Result<ResponseBody, Error> {
    check_listed("model names", models.len())?;
    let jobs = if models.is_empty() {
        handle.train_all().await?
    } else {
        let mut seen = std::collections::HashSet::new();
        let mut jobs = Vec::with_capacity(models.len());
        for m in models.iter().filter(|m| seen.insert(m.as_str())) {
            jobs.push(handle.train(m).await?);
        }
        jobs
    };
    Ok(ResponseBody::Queued { jobs })
}

/// Outcomes of the known jobs among `ids`, in request order.
async fn jobs(handle: &TrainerHandle, ids: Vec<JobId>) -> Result<ResponseBody, Error> {
    check_listed("job ids", ids.len())?;
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        jobs.extend(handle.job(id).await?);
    }
    Ok(ResponseBody::Jobs { jobs })
}

async fn answer(handle: &TrainerHandle, body: RequestBody) -> Response {
    let result: Result<ResponseBody, Error> = match body {
        RequestBody::Status => handle
            .status()
            .await
            .map(|s| ResponseBody::Status(Box::new(s))),
        RequestBody::Models => handle
            .list_models()
            .await
            .map(|models| ResponseBody::Models { models }),
        RequestBody::Show { model, version } => {
            let sel = version.map_or(VersionSel::Active, VersionSel::Number);
            handle
                .model(&model, sel)
                .await
                .map(|r| ResponseBody::Model(Box::new(r)))
        }
        RequestBody::Train { models } => train(handle, models).await,
        RequestBody::Jobs { ids } => jobs(handle, ids).await,
        RequestBody::Activate { model, version } => handle
            .activate(&model, version)
            .await
            .map(|_| ResponseBody::Active { model, version }),
        RequestBody::Rollback { model } => handle
            .rollback(&model)
            .await
            .map(|version| ResponseBody::Active { model, version }),
        RequestBody::History { model } => handle
            .history(&model)
            .await
            .map(|activations| ResponseBody::History { activations }),
        RequestBody::Predict { model, features } => {
            handle
                .predict(&model, &features)
                .map(|(version, probability)| ResponseBody::Prediction {
                    model,
                    version,
                    probability,
                })
        }
        RequestBody::Shutdown => Ok(ResponseBody::ShuttingDown),
    };
    match result {
        Ok(body) => Response::ok(body),
        Err(e) => failure(e),
    }
}
