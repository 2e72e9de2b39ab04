//! The embedded API end to end: train, list, read a version, activate, roll back, audit the
//! history, predict from the swapped cache, subscribe to events, refuse unknown models.

mod common;

use std::time::Duration;

use common::{fast_config, TIMEOUT};
use trainer_actors::types::{Event, JobState};
use trainer_actors::{Error, TrainerHandle, VersionSel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_list_activate_rollback_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let handle = TrainerHandle::spawn(fast_config(dir.path())).await.unwrap();
    let mut events = handle.subscribe();
    assert!(matches!(
        handle.predict_proba("analyst_1h", &[0.0; 12]),
        Err(Error::NoActiveModel(_))
    ));

    // Two rounds of analyst_1h: versions 1 and 2.
    for _ in 0..2 {
        let job = handle.train("analyst_1h").await.unwrap();
        let out = tokio::time::timeout(TIMEOUT, handle.wait(&[job]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out[0].state, JobState::Stored, "{out:?}");
    }
    assert_eq!(handle.served_version("analyst_1h"), Some(2));
    let models = handle.list_models().await.unwrap();
    let a1h = models.iter().find(|m| m.model == "analyst_1h").unwrap();
    assert_eq!(a1h.active_version, Some(2));
    assert_eq!(a1h.versions, vec![1, 2]);
    assert!(a1h.accuracy.is_some() && a1h.data_range.is_some());

    let v1 = handle
        .model("analyst_1h", VersionSel::Number(1))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.algorithm, "random_forest");
    assert_eq!(v1.feature_names.len(), 12);
    assert_eq!(v1.cv.folds.len(), 2);
    let active = handle
        .model("analyst_1h", VersionSel::Active)
        .await
        .unwrap();
    assert_eq!(active.version, 2);

    handle.activate("analyst_1h", 1).await.unwrap();
    assert_eq!(
        handle.served_version("analyst_1h"),
        Some(1),
        "cache swapped on activation"
    );
    assert_eq!(handle.rollback("analyst_1h").await.unwrap(), 2);
    assert_eq!(handle.served_version("analyst_1h"), Some(2));
    let history = handle.history("analyst_1h").await.unwrap();
    let reasons: Vec<&str> = history.iter().map(|a| a.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec!["trained", "trained", "activate", "rollback from 1"]
    );

    let p = handle
        .predict_proba(
            "analyst_1h",
            &[
                0.001, 1.01, 1.0, 100.0, 100.0, 100.0, 1.0, 1.0, 5.0, 1.0, 50.0, 0.1,
            ],
        )
        .unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert!(
        matches!(
            handle.predict_proba("analyst_1h", &[0.0; 3]),
            Err(Error::Core(_))
        ),
        "wrong width refused"
    );
    assert!(
        matches!(
            handle.predict_proba("analyst_1h", &[f64::NAN; 12]),
            Err(Error::Core(_))
        ),
        "NaN refused"
    );
    assert!(matches!(
        handle.train("analyst_2h").await,
        Err(Error::UnknownModel(_))
    ));
    assert!(
        handle.activate("analyst_1h", 99).await.is_err(),
        "missing version refused"
    );
    assert!(matches!(
        handle.model("analyst_5m", VersionSel::Active).await,
        Err(Error::NoActiveModel(_))
    ));

    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(seen
        .iter()
        .any(|e| matches!(e, Event::Queued { model, .. } if model == "analyst_1h")));
    assert!(seen
        .iter()
        .any(|e| matches!(e, Event::Started { attempt: 1, .. })));
    assert!(seen
        .iter()
        .any(|e| matches!(e, Event::Progress { done, total, .. } if done == total)));
    assert!(seen
        .iter()
        .any(|e| matches!(e, Event::Finished { version: 2, .. })));
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Activated { version: 1, .. })),
        "activation published"
    );

    let summary = handle.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(summary.contains("store flushed"), "{summary}");
    assert!(handle.train_all().await.is_err(), "no jobs after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_tree_serves_the_stored_models_at_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let handle = TrainerHandle::spawn(fast_config(dir.path())).await.unwrap();
        let jobs = handle.train_all().await.unwrap();
        let out = tokio::time::timeout(TIMEOUT, handle.wait(&jobs))
            .await
            .unwrap()
            .unwrap();
        assert!(out.iter().all(|o| o.state == JobState::Stored), "{out:?}");
        handle.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let handle = TrainerHandle::spawn(fast_config(dir.path())).await.unwrap();
    for m in common::MODELS {
        assert_eq!(
            handle.served_version(m),
            Some(1),
            "{m} loaded from the store at start"
        );
    }
    assert!(
        handle.train_missing().await.unwrap().is_empty(),
        "nothing missing"
    );
    let status = handle.status().await.unwrap();
    assert_eq!(status.model_count, 5);
    assert_eq!(status.trainers.len(), 2);
    assert!(status.trainers.iter().all(|t| t.state == "idle"));
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_retrains_when_the_data_grew_while_it_was_down_and_when_it_changes() {
    use trainer::data::{generate, save_csv, SyntheticParams};
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bars.csv");
    let bars = generate(&SyntheticParams {
        n: 8000,
        seed: 3,
        ..SyntheticParams::default()
    });
    save_csv(&bars, &csv).unwrap();
    let mut cfg = fast_config(dir.path());
    cfg.data.source = trainer::config::DataSource::Csv;
    cfg.data.path = csv.clone();
    cfg.model_trainer.analyst_timeframes = vec![trainer::data::Timeframe::H1];
    cfg.model_trainer.enable_tactician_models = false;
    cfg.schedule.watch_interval = Duration::from_millis(50);

    let handle = TrainerHandle::spawn_with(cfg.clone(), true).await.unwrap();
    let jobs = handle.train_missing().await.unwrap();
    assert_eq!(jobs.len(), 1);
    handle.wait(&jobs).await.unwrap();
    assert_eq!(handle.served_version("analyst_1h"), Some(1));
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    drop(handle);

    // Rows appended while the daemon is down: the restarted service retrains on its own.
    let more = generate(&SyntheticParams {
        n: 8600,
        seed: 3,
        ..SyntheticParams::default()
    });
    save_csv(&more, &csv).unwrap();
    let handle = TrainerHandle::spawn_with(cfg.clone(), true).await.unwrap();
    let mut events = handle.subscribe();
    common::eventually("retrain after restart", || {
        (handle.served_version("analyst_1h") == Some(2)).then_some(())
    })
    .await;

    // Rows appended while it runs: noticed by the watcher, retrained again.
    let even_more = generate(&SyntheticParams {
        n: 9200,
        seed: 3,
        ..SyntheticParams::default()
    });
    save_csv(&even_more, &csv).unwrap();
    common::eventually("retrain on change", || {
        (handle.served_version("analyst_1h") == Some(3)).then_some(())
    })
    .await;
    let mut finished = 0;
    while let Ok(e) = events.try_recv() {
        finished += usize::from(matches!(e, Event::Finished { .. }));
    }
    assert!(finished >= 1);
    let rec = handle
        .model("analyst_1h", VersionSel::Active)
        .await
        .unwrap();
    assert_eq!(rec.data.bars, 9200, "trained on the newest data");
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_retrains_on_schedule_and_reports_stale_models() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = fast_config(dir.path());
    cfg.model_trainer.analyst_timeframes = vec![trainer::data::Timeframe::H1];
    cfg.model_trainer.enable_tactician_models = false;
    cfg.schedule.watch_interval = Duration::from_millis(50);
    cfg.schedule.retrain_interval = Duration::from_millis(400);
    // Synthetic bars start in 2024: far older than a day.
    cfg.schedule.max_model_age = Duration::from_secs(86_400);
    let handle = TrainerHandle::spawn_with(cfg, true).await.unwrap();
    handle.train_missing().await.unwrap();
    common::eventually("two scheduled retrains", || {
        handle
            .served_version("analyst_1h")
            .is_some_and(|v| v >= 3)
            .then_some(())
    })
    .await;
    let status = handle.status().await.unwrap();
    assert_eq!(status.stale_models, vec!["analyst_1h".to_string()]);
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_ends_failed_and_the_tree_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = fast_config(dir.path());
    cfg.data.synthetic_rows = 60_000;
    cfg.training.n_estimators = 60;
    cfg.training.cv_folds = 4;
    let handle = TrainerHandle::spawn(cfg).await.unwrap();
    let mut events = handle.subscribe();
    let job = handle.train("analyst_1m").await.unwrap();
    common::eventually("the job to start", || {
        while let Ok(e) = events.try_recv() {
            if matches!(e, Event::Started { job: j, .. } if j == job) {
                return Some(());
            }
        }
        None
    })
    .await;
    assert!(
        handle.cancel(job).await.unwrap(),
        "a running job can be cancelled"
    );
    let out = tokio::time::timeout(TIMEOUT, handle.wait(&[job]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out[0].state, JobState::Failed, "{out:?}");
    assert!(
        out[0].error.as_deref().unwrap_or("").contains("cancel"),
        "{out:?}"
    );
    let status = handle.status().await.unwrap();
    assert_eq!(status.restarts, 0, "a cancel is not a trainer failure");
    assert_eq!(status.jobs_failed, 1);
    // The tree carries on.
    let next = handle.train("analyst_1h").await.unwrap();
    let out = tokio::time::timeout(TIMEOUT, handle.wait(&[next]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out[0].state, JobState::Stored, "{out:?}");
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
}
