//! `Feature`: resamples and computes features and labels per timeframe, cached by data content hash.
//!
//! Message: `Compute` (answered to the supervisor with `SupervisorMsg::FeaturesReady`). Work runs
//! on the blocking pool. The cache keeps only the feature sets of the newest data hash. Failure
//! policy: a panic stops this actor and the supervisor restarts it and asks again.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use trainer::data::Timeframe;
use trainer::job::FeatureSet;

use super::data_loader::Snapshot;
use super::supervisor::SupervisorMsg;

/// Messages of the feature actor.
pub enum FeatureMsg {
    /// Compute (or fetch from cache) the feature set of `timeframe` for `snapshot`.
    Compute {
        /// The data.
        snapshot: Arc<Snapshot>,
        /// Timeframe.
        timeframe: Timeframe,
        /// Label horizon.
        horizon: usize,
    },
}

impl std::fmt::Debug for FeatureMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeatureMsg::Compute {
                snapshot,
                timeframe,
                horizon,
            } => f
                .debug_struct("Compute")
                .field("bars", &snapshot.info.bars)
                .field("timeframe", timeframe)
                .field("horizon", horizon)
                .finish(),
        }
    }
}

/// Start-up arguments.
pub struct FeatureArgs {
    /// Where results go.
    pub supervisor: ActorRef<SupervisorMsg>,
}

/// State: the cache.
pub struct FeatureState {
    supervisor: ActorRef<SupervisorMsg>,
    cache: HashMap<(String, Timeframe, usize), Arc<FeatureSet>>,
}

/// The feature actor.
pub struct FeatureActor;

impl Actor for FeatureActor {
    type Msg = FeatureMsg;
    type State = FeatureState;
    type Arguments = FeatureArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: FeatureArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(FeatureState {
            supervisor: args.supervisor,
            cache: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FeatureMsg::Compute {
                snapshot,
                timeframe,
                horizon,
            } => compute(state, snapshot, timeframe, horizon).await,
        }
        Ok(())
    }
}

async fn compute(
    state: &mut FeatureState,
    snapshot: Arc<Snapshot>,
    timeframe: Timeframe,
    horizon: usize,
) {
    let hash = snapshot.info.content_hash.clone();
    let key = (hash.clone(), timeframe, horizon);
    let result = if let Some(fs) = state.cache.get(&key) {
        Ok(fs.clone())
    } else {
        let snap = snapshot.clone();
        let h = hash.clone();
        let res = tokio::task::spawn_blocking(move || {
            let _span = tracing::info_span!("features", timeframe = %timeframe).entered();
            FeatureSet::build(&snap.bars, timeframe, horizon, &h)
        })
        .await;
        match res {
            Ok(fs) => {
                let fs = Arc::new(fs);
                state.cache.retain(|(h, _, _), _| *h == hash);
                state.cache.insert(key, fs.clone());
                Ok(fs)
            }
            Err(e) => Err(format!("feature computation panicked: {e}")),
        }
    };
    let _ = state.supervisor.cast(SupervisorMsg::FeaturesReady {
        hash,
        timeframe,
        result,
    });
}
