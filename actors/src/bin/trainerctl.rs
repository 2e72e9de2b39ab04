//! `trainerctl`: see `trainer_actors::ctl`.
use clap::Parser;

fn main() -> std::process::ExitCode {
    trainer_actors::ctl::run(trainer_actors::ctl::Cli::parse())
}
