//! `tierwise bench gateway --requests N [--concurrency C] [--json]` (built with `--features
//! bench`): the latency the gateway adds over calling the mock upstream directly.

use tierwise_dev::gateway_bench::{self, BenchOptions};

use crate::cli::BenchGatewayArgs;
use crate::output::{self, Status};

pub fn gateway(args: BenchGatewayArgs) -> anyhow::Result<Status> {
    let pb = output::progress(0, args.json, "bench gateway");
    let report = gateway_bench::run(
        BenchOptions {
            requests: args.requests,
            concurrency: args.concurrency,
            keys: args.keys,
            store: args.store.clone(),
        },
        &|done, total| {
            pb.set_length(total);
            pb.set_position(done);
        },
    )?;
    pb.finish_and_clear();
    if args.json {
        output::json(&report)?;
    } else {
        output::out(&gateway_bench::table(&report));
    }
    Ok(if report.errors > 0 {
        Status::Problems
    } else {
        Status::Success
    })
}
