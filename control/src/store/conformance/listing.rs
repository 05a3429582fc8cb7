//! Conformance check for `list_jobs` over every combination of filters the
//! API offers (states, skip reason, account, host email, creation range,
//! source),
//! read page by page, against a brute-force filter of all the jobs.

use crate::model::*;
use crate::store::{PageQuery, Store};

use super::{at, cancel, create_tenant, install_new_account, queued_job};

async fn all_pages(store: &dyn Store, institution_id: &str, filter: &JobFilter) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_jobs(institution_id, filter, &PageQuery { after, size: 7 })
            .await
            .expect("list jobs");
        assert!(page.items.len() <= 7, "page larger than asked");
        ids.extend(page.items.into_iter().map(|job| job.job_id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

fn admits(filter: &JobFilter, job: &Job) -> bool {
    (filter.states.is_empty() || filter.states.contains(&job.state))
        && filter
            .skip_reason
            .is_none_or(|r| job.skip_reason == Some(r))
        && filter
            .zoom_account_id
            .as_ref()
            .is_none_or(|a| *a == job.zoom_account_id)
        && filter
            .host_email
            .as_ref()
            .is_none_or(|h| *h == crate::email::normalize(&job.host_email))
        && filter.created_from.is_none_or(|t| job.created_at >= t)
        && filter.created_before.is_none_or(|t| job.created_at < t)
        && filter.source.is_none_or(|s| job.source == s)
}

pub async fn job_list_filter_combinations(store: &dyn Store) {
    let tenant = create_tenant(store, "listing").await;
    let a = &tenant.institution_id;
    let accounts = [
        tenant.zoom_account_id.clone(),
        install_new_account(store, &tenant.configuration_id).await,
    ];
    let hosts = ["one@example.edu", "Two@Example.edu", "three@example.edu"];
    let kinds = [
        (JobState::Queued, None),
        (JobState::Skipped, Some(SkipReason::NoMatchingUser)),
        (JobState::Skipped, Some(SkipReason::TooLong)),
        (JobState::Completed, None),
        (JobState::Failed, None),
        (JobState::Cancelled, None),
    ];
    // Creation times out of creation order, some sharing a millisecond.
    let creates = (0..90usize).map(|i| {
        let (state, skip_reason) = kinds[(i * 7) % kinds.len()];
        let created = at(((i * 37) % 60) as i64 * 1_000);
        store.upsert_job(NewJob {
            zoom_account_id: accounts[i % 2].clone(),
            host_email: hosts[(i / 2) % 3].to_string(),
            state,
            skip_reason,
            source: JobSource::ALL[(i / 5) % 3],
            ..queued_job(&tenant, &format!("listing-{i}"), "Listed", created)
        })
    });
    for created in futures::future::join_all(creates).await {
        assert!(created.expect("create job").1);
    }
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_jobs(a, &JobFilter::default(), &PageQuery { after, size: 0 })
            .await
            .expect("list jobs");
        all.extend(page.items);
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(all.len(), 90);
    assert!(
        all.windows(2).all(|w| w[0].job_id < w[1].job_id),
        "listed in id order"
    );

    let state_sets = [
        vec![],
        vec![JobState::Skipped],
        vec![JobState::Queued, JobState::Completed],
    ];
    let mut checked = 0;
    for states in &state_sets {
        for mask in 0..64u32 {
            let filter = JobFilter {
                states: states.clone(),
                skip_reason: (mask & 1 != 0).then_some(SkipReason::TooLong),
                zoom_account_id: (mask & 2 != 0).then(|| accounts[1].clone()),
                host_email: (mask & 4 != 0).then(|| "two@example.edu".to_string()),
                created_from: (mask & 8 != 0).then(|| at(15_000)),
                created_before: (mask & 16 != 0).then(|| at(45_000)),
                source: (mask & 32 != 0).then_some(JobSource::Reconcile),
            };
            let expected: Vec<String> = all
                .iter()
                .filter(|job| admits(&filter, job))
                .map(|job| job.job_id.clone())
                .collect();
            assert_eq!(
                all_pages(store, a, &filter).await,
                expected,
                "filter {filter:?}"
            );
            checked += usize::from(!expected.is_empty());
        }
    }
    assert!(checked > 80, "most combinations match some job ({checked})");
    for job in all.iter().filter(|job| job.state == JobState::Queued) {
        cancel(store, a, &job.job_id, at(100_000)).await;
    }
}
