//! `trainerd`: see `trainer_actors::daemon`.
use clap::Parser;

fn main() -> std::process::ExitCode {
    trainer_actors::daemon::run(trainer_actors::daemon::Args::parse())
}
