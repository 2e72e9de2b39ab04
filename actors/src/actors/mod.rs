//! The actors of the supervision tree, one module each (actor, state, message enum).
//!
//! ```text
//!                       Supervisor (root: job queue, restart policy)
//!        ┌──────────────┬───────────┴──────────┬──────────────────┐
//!    DataLoader      Feature          Trainer 0..N-1          Persister
//!   (load, watch)  (features,       (one OS thread each:     (only writer
//!                   cached by hash)  trainer-<i>)              of the store)
//! ```

pub mod data_loader;
pub mod feature;
pub mod persister;
pub mod supervisor;
pub mod trainer;
