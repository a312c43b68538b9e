use crate::cli::BenchGatewayArgs;
use crate::output::Status;

pub fn gateway(_args: BenchGatewayArgs) -> anyhow::Result<Status> {
    anyhow::bail!("`tierwise bench gateway` is not built yet (issue 2)")
}
