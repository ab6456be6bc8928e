//! `acdmon demo`: the daemon with a simulated centre and no config file.

pub mod sim;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::cti::{Cti, CtiFuture, CtiOutcome, CtiRequest, CtiVerb};
use crate::sources::{Envelope, SourceHealth};
use crate::time::Ts;
use sim::{Centre, Simulator};

/// The embedded demo configuration (see `config/demo.toml`).
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

/// The demo's configuration: `config/demo.toml` plus the simulated people.
pub fn demo_config(listen: &str, data_dir: &str) -> anyhow::Result<Config> {
    let centre = Centre::hotline();
    let mut text = DEMO_TOML.replace(
        "listen = \"127.0.0.1:8080\"",
        &format!("listen = {listen:?}"),
    );
    // No checkpoint: the simulation starts its centre afresh each time, so
    // a restored day (its waiting callers, its call ids) would not fit it.
    text.push_str(&format!(
        "\n[storage]\npath = {:?}\ncheckpoint_every = \"0s\"\n",
        format!("{data_dir}/acdmon.sqlite")
    ));
    for (id, name, groups) in &centre.people {
        text.push_str(&format!(
            "\n[[agents]]\nid = {id:?}\nname = {name:?}\ninterface = {:?}\ngroups = {:?}\n",
            format!("SIM/{id}"),
            groups
        ));
    }
    Config::parse("demo.toml", &text).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("demo configuration is invalid:\n{}", lines.join("\n"))
    })
}

enum SimCommand {
    Act(CtiRequest, oneshot::Sender<CtiOutcome>),
}

/// The simulated phone system's CTI: sign-ins reach the simulator.
#[derive(Clone)]
pub struct SimCti {
    tx: mpsc::Sender<SimCommand>,
}

impl Cti for SimCti {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (otx, orx) = oneshot::channel();
            if tx.send(SimCommand::Act(req, otx)).await.is_err() {
                return CtiOutcome::failed("simulator stopped");
            }
            match tokio::time::timeout(Duration::from_secs(5), orx).await {
                Ok(Ok(o)) => o,
                _ => CtiOutcome::failed("simulator did not answer"),
            }
        })
    }
}

/// Commands for the simulator, from its [`SimCti`].
pub struct SimCommands(mpsc::Receiver<SimCommand>);

/// The simulator's CTI handle and the receiving end, made before the
/// simulator runs (the ladder needs the handle before the engine starts).
pub fn sim_channel() -> (SimCti, SimCommands) {
    let (tx, rx) = mpsc::channel::<SimCommand>(64);
    (SimCti { tx }, SimCommands(rx))
}

/// Starts the simulator as a source; returns its CTI handle and its task.
pub fn spawn_simulator(
    seed: u64,
    inbox: crate::sources::Inbox,
    health: Arc<SourceHealth>,
) -> (SimCti, tokio::task::JoinHandle<()>) {
    let (cti, rx) = sim_channel();
    let task = spawn_simulator_with(seed, inbox, health, rx);
    (cti, task)
}

/// Starts the simulator as a source, taking commands from `commands`.
pub fn spawn_simulator_with(
    seed: u64,
    inbox: crate::sources::Inbox,
    health: Arc<SourceHealth>,
    commands: SimCommands,
) -> tokio::task::JoinHandle<()> {
    let mut rx = commands.0;
    tokio::spawn(async move {
        let mut sim = Simulator::new(Centre::hotline(), seed, Ts::now());
        health.set_connected(true);
        health.set_synced(true);
        let source: Arc<str> = Arc::from("simulator");
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                cmd = rx.recv() => {
                    if let Some(SimCommand::Act(req, reply)) = cmd {
                        let r = match req.verb {
                            CtiVerb::SignIn => sim.sign_in(&req.agent, &req.queue),
                            CtiVerb::SignOut => sim.sign_out(&req.agent, &req.queue),
                        };
                        let _ = reply.send(match r {
                            Ok(()) => CtiOutcome::ok("simulator accepted"),
                            Err(e) => CtiOutcome::failed(e),
                        });
                    }
                }
            }
            let events = sim.step(Ts::now());
            if events.is_empty() {
                continue;
            }
            health.add_events(events.len() as u64);
            if inbox
                .send(Envelope::Batch {
                    source: source.clone(),
                    events,
                })
                .await
                .is_err()
            {
                break;
            }
        }
    })
}

/// `acdmon demo`.
pub async fn run(listen: &str, seed: u64) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("acdmon-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cfg = demo_config(listen, &dir.to_string_lossy())?;
    // The ladder signs the simulated people in and out through the
    // simulator, so the surge walks the ladder up and back down.
    let (cti, commands) = sim_channel();
    let registry = crate::daemon::cti_registry(&cfg)?;
    registry.insert("simulator", Arc::new(cti));
    registry.set_default("simulator");
    let parts = crate::daemon::Parts::open(&cfg, registry)?;
    let d = crate::daemon::start_with(cfg, parts);
    let health = SourceHealth::new("simulator", "json");
    d.state.health.register(health.clone());
    let sim = spawn_simulator_with(seed, d.state.inbox.clone(), health, commands);
    d.adopt_source("simulator", sim).await;
    eprintln!("acdmon demo: the wall is at http://{listen}/  (API: http://{listen}/api/v1/queues)");
    d.run().await
}
