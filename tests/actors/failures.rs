//! Failure injection (built with `--features failpoints`): the supervision tree under trainer
//! panics, a model that always fails, a restart storm, persister write errors, a process killed
//! in the middle of writing versions, and predictions served throughout.
//!
//! Failpoints are process-global, so every test holds a `fail::FailScenario`, which serializes them.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{fast_config, MODELS, TIMEOUT};
use trainer::store::Store;
use trainer_actors::types::{Event, JobState};
use trainer_actors::TrainerHandle;

fn versions_per_model(store_dir: &std::path::Path) -> BTreeMap<String, Vec<u64>> {
    let store = Store::open(store_dir).expect("store reopens");
    MODELS
        .iter()
        .map(|m| (m.to_string(), store.version_numbers(m).expect("versions")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_panics_twice_then_every_model_is_stored_once() {
    let scenario = fail::FailScenario::setup();
    fail::cfg("trainer.fit", "2*panic(injected)").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = fast_config(dir.path());
    let handle = TrainerHandle::spawn(cfg).await.unwrap();
    let mut events = handle.subscribe();
    let jobs = handle.train_all().await.unwrap();
    let outcomes = tokio::time::timeout(TIMEOUT, handle.wait(&jobs))
        .await
        .unwrap()
        .unwrap();
    let status = handle.status().await.unwrap();
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    drop(handle); // releases the store
    scenario.teardown();

    assert_eq!(outcomes.len(), 5);
    for o in &outcomes {
        assert_eq!(o.state, JobState::Stored, "{o:?}");
        assert_eq!(o.version, Some(1), "{o:?}");
    }
    assert_eq!(status.restarts, 2, "two panics, two restarts: {status:?}");
    let total_attempts: u32 = outcomes.iter().map(|o| o.attempts).sum();
    assert_eq!(total_attempts, 7, "5 jobs + 2 retried attempts");
    let mut restarted = 0;
    while let Ok(e) = events.try_recv() {
        if matches!(e, Event::TrainerRestarted { .. }) {
            restarted += 1;
        }
    }
    assert_eq!(restarted, 2);
    for (model, versions) in versions_per_model(&dir.path().join("store")) {
        assert_eq!(versions, vec![1], "{model} stored exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_always_fails_is_failed_after_max_attempts_and_the_others_are_stored() {
    let scenario = fail::FailScenario::setup();
    fail::cfg("trainer.fit.tactician_1m", "panic(tactician is broken)").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handle = TrainerHandle::spawn(fast_config(dir.path())).await.unwrap();
    let jobs = handle.train_all().await.unwrap();
    let outcomes = tokio::time::timeout(TIMEOUT, handle.wait(&jobs))
        .await
        .unwrap()
        .unwrap();
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    drop(handle); // releases the store
    scenario.teardown();

    for o in &outcomes {
        if o.model == "tactician_1m" {
            assert_eq!(o.state, JobState::Failed, "{o:?}");
            assert_eq!(o.attempts, 3, "max_attempts = 3: {o:?}");
            let err = o.error.as_deref().unwrap_or("");
            assert!(err.contains("tactician is broken"), "cause kept: {err}");
        } else {
            assert_eq!(o.state, JobState::Stored, "{o:?}");
        }
    }
    let versions = versions_per_model(&dir.path().join("store"));
    assert!(versions["tactician_1m"].is_empty());
    assert_eq!(versions.values().filter(|v| *v == &vec![1]).count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_returned_by_a_fit_is_retried_like_a_panic() {
    let scenario = fail::FailScenario::setup();
    fail::cfg("trainer.fit.analyst_5m", "1*return(disk hiccup)").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handle = TrainerHandle::spawn(fast_config(dir.path())).await.unwrap();
    let jobs = handle.train_all().await.unwrap();
    let outcomes = tokio::time::timeout(TIMEOUT, handle.wait(&jobs))
        .await
        .unwrap()
        .unwrap();
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    drop(handle); // releases the store
    scenario.teardown();
    let a5 = outcomes.iter().find(|o| o.model == "analyst_5m").unwrap();
    assert_eq!(a5.state, JobState::Stored);
    assert_eq!(a5.attempts, 2);
    assert!(outcomes.iter().all(|o| o.state == JobState::Stored));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_storm_escalates_cleanly_with_the_reason() {
    let scenario = fail::FailScenario::setup();
    fail::cfg("trainer.fit", "panic(always)").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = fast_config(dir.path());
    cfg.supervision.max_restarts = 3;
    cfg.supervision.max_attempts = 10;
    let handle = TrainerHandle::spawn(cfg).await.unwrap();
    let mut events = handle.subscribe();
    let jobs = handle.train_all().await.unwrap();
    let outcomes = tokio::time::timeout(TIMEOUT, handle.wait(&jobs))
        .await
        .unwrap()
        .unwrap();
    // The tree stops by itself.
    tokio::time::timeout(TIMEOUT, handle.stopped())
        .await
        .expect("tree stopped after escalation");
    scenario.teardown();

    let reason = handle.escalation().expect("escalation reason published");
    assert!(reason.contains("max_restarts = 3"), "{reason}");
    assert!(
        reason.contains("always"),
        "names the last failure: {reason}"
    );
    assert!(
        outcomes.iter().all(|o| o.state == JobState::Failed),
        "{outcomes:?}"
    );
    let mut saw = false;
    while let Ok(e) = events.try_recv() {
        if let Event::Escalated { reason: r } = e {
            assert_eq!(r, reason);
            saw = true;
        }
    }
    assert!(saw, "subscribers are told");
    assert!(matches!(
        handle.status().await,
        Err(trainer_actors::Error::Escalated(_))
    ));
    drop(handle); // releases the store
                  // Nothing half-written: the store opens and holds no version.
    assert!(versions_per_model(&dir.path().join("store"))
        .values()
        .all(|v| v.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persister_write_errors_are_retried_without_partial_versions() {
    let scenario = fail::FailScenario::setup();
    fail::cfg("persister.write", "3*return(io error)").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handle = TrainerHandle::spawn(fast_config(dir.path())).await.unwrap();
    let jobs = handle.train_all().await.unwrap();
    let outcomes = tokio::time::timeout(TIMEOUT, handle.wait(&jobs))
        .await
        .unwrap()
        .unwrap();
    let status = handle.status().await.unwrap();
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    drop(handle); // releases the store
    scenario.teardown();
    assert!(
        outcomes.iter().all(|o| o.state == JobState::Stored),
        "{outcomes:?}"
    );
    assert!(
        status
            .recent_errors
            .iter()
            .filter(|e| e.contains("store write failed"))
            .count()
            == 3,
        "{:?}",
        status.recent_errors
    );
    let store = Store::open(dir.path().join("store")).unwrap();
    for m in MODELS {
        assert_eq!(store.version_numbers(m).unwrap(), vec![1], "{m}");
        assert_eq!(store.active_version(m).unwrap(), Some(1));
        let rec = store.get(m, 1).unwrap().expect("complete version");
        trainer::models::bundle::ModelBundle::decode(&rec.bundle).expect("bundle decodes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_keep_being_answered_while_trainers_train_and_crash() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let handle = TrainerHandle::spawn(fast_config(dir.path())).await.unwrap();
    let jobs = handle.train_all().await.unwrap();
    handle.wait(&jobs).await.unwrap();
    fail::cfg("trainer.fit", "3*panic(crash while serving)").unwrap();
    let jobs = handle.train_all().await.unwrap();
    let row = [
        0.001, 1.002, 0.999, 100.0, 100.0, 100.0, 0.5, 0.6, 10.0, 1.0, 55.0, 0.1,
    ];
    let start = Instant::now();
    let mut answered = 0u64;
    let mut worst = Duration::ZERO;
    let mut status_worst = Duration::ZERO;
    loop {
        for m in MODELS {
            let t = Instant::now();
            let p = handle.predict_proba(m, &row).expect("prediction answered");
            worst = worst.max(t.elapsed());
            assert!((0.0..=1.0).contains(&p));
            answered += 1;
        }
        let t = Instant::now();
        handle.status().await.expect("status answered");
        status_worst = status_worst.max(t.elapsed());
        let done = handle
            .job(*jobs.last().unwrap())
            .await
            .unwrap()
            .is_some_and(|o| o.state.is_terminal())
            && futures_all_terminal(&handle, &jobs).await;
        if done {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "training did not finish");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = handle.status().await.unwrap();
    let served: Vec<Option<u64>> = MODELS.iter().map(|m| handle.served_version(m)).collect();
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    drop(handle); // releases the store
    scenario.teardown();
    assert!(answered > 50, "{answered}");
    assert_eq!(status.restarts, 3);
    assert!(
        worst < Duration::from_millis(5),
        "a prediction took {worst:?}"
    );
    eprintln!("predictions: {answered}, worst {worst:?}; status worst {status_worst:?}");
    assert_eq!(
        served,
        vec![Some(2); 5],
        "every model swapped to its new version"
    );
}

async fn futures_all_terminal(handle: &TrainerHandle, jobs: &[u64]) -> bool {
    for j in jobs {
        match handle.job(*j).await {
            Ok(Some(o)) if o.state.is_terminal() => {}
            _ => return false,
        }
    }
    true
}

/// Child side of the SIGKILL test: writes versions in a loop until killed.
#[test]
fn sigkill_child_writer() {
    let Ok(dir) = std::env::var("TRAINER_TEST_KILL_WRITER") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut cfg = fast_config(std::path::Path::new(&dir));
        cfg.store.keep_versions = 3;
        let handle = TrainerHandle::spawn(cfg).await.unwrap();
        loop {
            let jobs = handle.train_all().await.unwrap();
            handle.wait(&jobs).await.unwrap();
        }
    });
}

#[test]
fn sigkill_in_the_middle_of_writing_versions_leaves_a_store_that_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for (round, delay_ms) in [700u64, 1100, 1500, 1900].into_iter().enumerate() {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "sigkill_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TRAINER_TEST_KILL_WRITER", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = Store::open(dir.path().join("store")).expect("store opens after SIGKILL");
        let mut complete = 0;
        for m in MODELS {
            for listed in store.list(m).unwrap() {
                let rec = listed
                    .record
                    .unwrap_or_else(|e| panic!("round {round}: {m}@{}: {e}", listed.version));
                trainer::models::bundle::ModelBundle::decode(&rec.bundle).expect("bundle decodes");
                complete += 1;
            }
            if let Some(active) = store.active_version(m).unwrap() {
                let rec = store.get(m, active).unwrap();
                assert!(
                    rec.is_some(),
                    "round {round}: active pointer of {m} names version {active}, which is missing"
                );
            }
        }
        eprintln!("round {round}: killed after {delay_ms} ms; {complete} complete versions");
        drop(store);
    }
}
