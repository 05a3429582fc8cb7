//! `ferry demo --keep-running`: the daemon stays up after the run, with
//! exact instructions for looking around it (the admin console's URL and a
//! key to sign in with among them), until Ctrl-C.

use anyhow::Context;

use super::setup::Stage;

/// Prints how to reach the daemon and waits for Ctrl-C.
pub async fn keep_running(stage: &Stage, example_job_id: Option<&str>) -> anyhow::Result<()> {
    let grpc = stage.app.grpc_addr;
    let http = stage.app.http_addr;
    let admin_key = &stage.admin_key;
    // The binary running now, so the lines work as they are from any folder.
    let ferry = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "ferry".into());
    println!();
    println!("ferry keeps running with the demo's data; explore it, then press Ctrl-C to stop it.");
    println!("  gRPC API        http://{grpc}  (plaintext, loopback only)");
    println!("  webhook intake  http://{http}/zoom/webhook");
    println!("  metrics         http://{http}/metrics");
    println!("  admin console   http://{http}/admin  (sign in with the admin key below)");
    println!(
        "  operator token  {}  (every institution; pass --institution {})",
        stage.operator_token, stage.institution_id
    );
    println!("  admin key       {admin_key}  (Demo University only)");
    println!();
    println!("In a browser, the admin console (the seed's Step 1 as web pages):");
    println!("  open http://{http}/admin and sign in with {admin_key}");
    println!(
        "  (or with the operator token and institution id {})",
        stage.institution_id
    );
    println!();
    println!("With the CLI, as the institution's admin (in another terminal):");
    println!("  export FERRY_SERVER=http://{grpc} FERRY_TOKEN={admin_key}");
    println!("  alias ferry={ferry}");
    println!("  ferry jobs list");
    println!("  ferry jobs list --state skipped --skip-reason no_matching_user");
    if let Some(job_id) = example_job_id {
        println!("  ferry jobs get {job_id}");
    }
    println!("  ferry media list");
    println!("  ferry users list");
    println!("  ferry sections list");
    println!("  ferry sections mappings");
    println!("  ferry users lookup elisa.zoom@example.edu");
    println!("  ferry accounts list --all");
    println!("  ferry jobs watch");
    println!(
        "  FERRY_TOKEN={} ferry institutions list",
        stage.operator_token
    );
    println!();
    println!("With grpcurl (the server offers reflection):");
    println!("  grpcurl -plaintext -H \"authorization: Bearer {admin_key}\" {grpc} list");
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer {admin_key}\" -d '{{}}' {grpc} ferry.v1.JobService/ListJobs"
    );
    println!();
    println!("And the metrics:");
    println!("  curl -s http://{http}/metrics | grep ^ferry_");
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    println!("stopping ferry");
    Ok(())
}
