//! The fence on the escalation stream, against a real `nats-server`: a CTI
//! leader that was stalled past its lease cannot append once the new
//! leader has, and the new leader cannot start leading over a record it
//! has not read.

mod nats;

use acdmon::cluster::broker::{self, Broker};
use acdmon::cluster::cti::stream_name;
use acdmon::cluster::esc_fence::{Fence, Refusal};
use acdmon::config::Config;
use async_nats::jetstream::stream;
use nats::NatsServer;

async fn connect(url: &str, instance: &str) -> Broker {
    let text = format!(
        "[cluster]\nnats = [\"{url}\"]\nsite = \"north\"\ninstance = \"{instance}\"\nlease_ttl = \"2s\"\n"
    );
    let cfg = Config::parse("t.toml", &text).unwrap().cluster.unwrap();
    broker::connect(&cfg).await.unwrap()
}

async fn escalation_stream(b: &Broker) -> stream::Stream {
    b.js.get_or_create_stream(stream::Config {
        name: stream_name("north"),
        subjects: vec!["acdmon.north.escalation.>".into()],
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn last_sequence(s: &mut stream::Stream) -> u64 {
    s.info().await.unwrap().state.last_sequence
}

fn entry(id: u64, by: &str) -> (String, String, Vec<u8>) {
    (
        "acdmon.north.escalation.entry".into(),
        format!("e:{id}"),
        format!(r#"{{"entry":{id},"by":"{by}"}}"#).into_bytes(),
    )
}

async fn append(f: &Fence, b: &Broker, r: (String, String, Vec<u8>)) -> Result<u64, Refusal> {
    f.append(b, r.0, &r.1, r.2).await
}

/// West leads and appends entry 1, then stalls past its lease. East takes
/// over: its lead record expects the last sequence it has read; it had not
/// read west's entry yet, so it is refused until it has. East then appends
/// its own entry 1 (the same id, another decision: not taken for a
/// duplicate of west's). West wakes up and appends entry 2: refused, and
/// every later append too, so it stops acting. The stream holds west's
/// lead and entry, east's lead and entry, nothing else.
#[tokio::test]
async fn a_stalled_leader_cannot_append_after_the_new_leader_did() {
    let server = NatsServer::start();
    let (west, east) = (
        connect(&server.url(), "west").await,
        connect(&server.url(), "east").await,
    );
    let mut s = escalation_stream(&west).await;
    let (fw, fe) = (Fence::default(), Fence::default());

    let epoch_w = fw.arm(&west, 0).await.expect("west leads");
    assert_eq!(fw.epoch(), Some(epoch_w));
    let seq = append(&fw, &west, entry(1, "west")).await.unwrap();
    assert_eq!(seq, epoch_w + 1);

    // East read the stream up to west's lead record only: refused.
    assert_eq!(fe.arm(&east, epoch_w).await, Err(None));
    assert_eq!(fe.epoch(), None);
    assert!(matches!(
        append(&fe, &east, entry(1, "east")).await,
        Err(Refusal::Deposed(_))
    ));
    // Having read on, it leads.
    let read = last_sequence(&mut s).await;
    let epoch_e = fe.arm(&east, read).await.expect("east leads");
    assert_eq!(epoch_e, read + 1);
    let seq_e = append(&fe, &east, entry(1, "east")).await.unwrap();
    assert_eq!(
        seq_e,
        epoch_e + 1,
        "east's entry 1 is stored, not a duplicate"
    );

    // West wakes up.
    match append(&fw, &west, entry(2, "west")).await {
        Err(Refusal::Deposed(why)) => assert!(why.contains("another instance"), "{why}"),
        other => panic!("west's late append: {other:?}"),
    }
    assert_eq!(fw.epoch(), None, "west's fence is down");
    assert!(matches!(
        append(&fw, &west, entry(3, "west")).await,
        Err(Refusal::Deposed(_))
    ));
    assert_eq!(
        last_sequence(&mut s).await,
        seq_e,
        "nothing of west's since"
    );

    // East goes on; a retry of its own record (a lost ack) is stored once.
    let seq2 = append(&fe, &east, entry(2, "east")).await.unwrap();
    assert_eq!(append(&fe, &east, entry(2, "east")).await.unwrap(), seq2);
    assert_eq!(
        append(&fe, &east, entry(3, "east")).await.unwrap(),
        seq2 + 1
    );
    assert!(fe.is_own(&format!("{epoch_e}:e:3")));
    assert!(!fe.is_own(&format!("{epoch_w}:e:1")));
}
