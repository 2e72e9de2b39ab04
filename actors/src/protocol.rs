//! The control-socket protocol: length-prefixed CBOR frames over a Unix domain socket.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of CBOR (ciborium). The client
//! sends one [`Request`] per frame and reads one [`Response`] per frame; a connection may carry
//! any number of request/response pairs, in order. Both carry [`PROTOCOL_VERSION`]; a request of
//! another version is answered with [`ErrorCode::Version`]. A frame over [`MAX_FRAME`] bytes is
//! answered with [`ErrorCode::TooLarge`] and the connection is closed; undecodable bytes are
//! answered with [`ErrorCode::Malformed`] and the connection is closed. See `docs/PROTOCOL.md`.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use trainer::store::{Activation, ModelRecord};

use crate::types::{JobId, JobOutcome, ModelSummary, Status};

/// Version of this protocol.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts, in bytes.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// A request frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Must be [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// What is asked.
    pub body: RequestBody,
}

/// What a client can ask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RequestBody {
    /// The daemon's status.
    Status,
    /// Every model with its active version.
    Models,
    /// One stored version (`version: None` = the active one).
    Show {
        /// Model id.
        model: String,
        /// Version, or the active one.
        version: Option<u64>,
    },
    /// Queue models (`models` empty = every enabled model).
    Train {
        /// Model ids.
        models: Vec<String>,
    },
    /// Current outcomes of jobs.
    Jobs {
        /// Job ids.
        ids: Vec<JobId>,
    },
    /// Make a version active.
    Activate {
        /// Model id.
        model: String,
        /// Version.
        version: u64,
    },
    /// Re-activate the previous version.
    Rollback {
        /// Model id.
        model: String,
    },
    /// Activation history.
    History {
        /// Model id.
        model: String,
    },
    /// Probability of "up" for one row of the 12 features.
    Predict {
        /// Model id.
        model: String,
        /// The 12 raw features.
        features: Vec<f64>,
    },
    /// Shut the daemon down (the reply is sent before it goes down).
    Shutdown,
}

/// A response frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Always [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The answer, or why not.
    pub result: Result<ResponseBody, ErrorBody>,
}

/// Answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResponseBody {
    /// To `Status`.
    Status(Box<Status>),
    /// To `Models`.
    Models {
        /// The models.
        models: Vec<ModelSummary>,
    },
    /// To `Show`.
    Model(Box<ModelRecord>),
    /// To `Train`.
    Queued {
        /// One job per model.
        jobs: Vec<JobId>,
    },
    /// To `Jobs`.
    Jobs {
        /// Outcomes, in request order (unknown ids are left out).
        jobs: Vec<JobOutcome>,
    },
    /// To `Activate` and `Rollback`: the version now active.
    Active {
        /// Model id.
        model: String,
        /// Version.
        version: u64,
    },
    /// To `History`.
    History {
        /// Oldest first.
        activations: Vec<Activation>,
    },
    /// To `Predict`.
    Prediction {
        /// Model id.
        model: String,
        /// Version that answered.
        version: u64,
        /// Probability of "up".
        probability: f64,
    },
    /// To `Shutdown`.
    ShuttingDown,
}

/// Error classes, so clients can map them to exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be decoded.
    Malformed,
    /// The frame is larger than [`MAX_FRAME`].
    TooLarge,
    /// Unsupported protocol version.
    Version,
    /// The request names something unknown (model, version, job).
    NotFound,
    /// The request is well-formed but invalid (bad features...).
    Invalid,
    /// The operation failed.
    Failed,
    /// The daemon is shutting down.
    ShuttingDown,
    /// Too many connections are open; try again later.
    Busy,
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Class.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
}

impl Response {
    /// A success.
    pub fn ok(body: ResponseBody) -> Self {
        Response {
            protocol: PROTOCOL_VERSION,
            result: Ok(body),
        }
    }
    /// A failure.
    pub fn err(code: ErrorCode, message: impl Into<String>) -> Self {
        Response {
            protocol: PROTOCOL_VERSION,
            result: Err(ErrorBody {
                code,
                message: message.into(),
            }),
        }
    }
}

/// Encodes `value` as one frame (length prefix + CBOR).
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut body = Vec::with_capacity(256);
    ciborium::into_writer(value, &mut body).map_err(|e| e.to_string())?;
    if body.len() > MAX_FRAME {
        return Err(format!("frame of {} bytes exceeds {MAX_FRAME}", body.len()));
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a frame body.
pub fn decode_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    if body.is_empty() {
        return Err("empty body".into());
    }
    ciborium::from_reader(body).map_err(|e| trainer::error::cbor_message(&e))
}

/// Blocking client call on a connected stream: sends `request`, reads one response.
pub fn call_blocking<S: Read + Write>(
    stream: &mut S,
    request: &Request,
) -> Result<Response, String> {
    let frame = encode_frame(request)?;
    stream.write_all(&frame).map_err(|e| format!("send: {e}"))?;
    stream.flush().map_err(|e| format!("send: {e}"))?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| format!("receive: {e}"))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(format!("response frame of {len} bytes exceeds {MAX_FRAME}"));
    }
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("receive: {e}"))?;
    decode_body(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let req = Request {
            protocol: PROTOCOL_VERSION,
            body: RequestBody::Train {
                models: vec!["analyst_1h".into()],
            },
        };
        let frame = encode_frame(&req).unwrap();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let back: Request = decode_body(&frame[4..]).unwrap();
        assert_eq!(back, req);
        let resp = Response::err(ErrorCode::NotFound, "no such model");
        let back: Response = decode_body(&encode_frame(&resp).unwrap()[4..]).unwrap();
        assert_eq!(back, resp);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff\xff", b"hello", &[0xa1, 0x61, 0x78]] {
            assert!(decode_body::<Request>(bytes).is_err());
        }
    }
}
