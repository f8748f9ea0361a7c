//! Redis link faults held past every timeout of the node (a command's 5 s, the live reader's
//! blocking read), with more clients and a faster publisher than the default suite's short
//! faults: a blackhole, latency longer than a command may take, and every connection cut, one
//! after the other on one node. Sizes: `SLUICE_SLOW_FAULT_CLIENTS`, `SLUICE_SLOW_FAULT_SECONDS`.

use std::time::Duration;

use testkit::Fault;

use crate::fault_round::{link_faults, node_behind_a_fault_proxy, Round};
use crate::measure::size;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_link_faults_past_every_timeout_lose_nothing() {
    let (_redis, proxy, node) = node_behind_a_fault_proxy().await;
    let round = Round {
        clients: size("FAULT_CLIENTS", 20),
        publish_every: Duration::from_millis(10),
        traffic: Duration::from_secs(2),
        hold: Duration::from_secs(size("FAULT_SECONDS", 10) as u64),
    };
    // 3 s each way: every command outlasts its 5 s timeout.
    let faults = [
        Fault::Blackhole,
        Fault::Latency(Duration::from_secs(3)),
        Fault::Reset,
    ];
    let figures = link_faults(&node, &proxy, &faults, &round).await;
    println!("{round:?}: {figures}");
}
