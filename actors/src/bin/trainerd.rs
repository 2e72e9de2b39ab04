//! `trainerd`: see `trainer_actors::daemon`.
fn main() -> std::process::ExitCode {
    eprintln!("trainerd: being written");
    std::process::ExitCode::from(1)
}
