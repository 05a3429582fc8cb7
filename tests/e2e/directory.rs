//! The user directory over gRPC: FULL against UPSERT, per-record rejection,
//! atomic application, and case-insensitive lookups.

use ferry_control::api;
use ferry_control::api::UserRole::{Admin, Instructor, Student};
use tonic::Code;

use crate::support::*;

async fn lookup(
    clients: &mut ferry_daemon::cli::client::Clients,
    email: &str,
) -> Result<api::User, tonic::Status> {
    clients
        .users
        .lookup_user_by_email(api::LookupUserByEmailRequest {
            institution_id: String::new(),
            email: email.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn all_users(clients: &mut ferry_daemon::cli::client::Clients) -> Vec<api::User> {
    clients
        .users
        .list_users(api::ListUsersRequest {
            institution_id: String::new(),
            include_inactive: true,
            page: None,
        })
        .await
        .unwrap()
        .into_inner()
        .users
}

#[tokio::test]
async fn full_sync_deactivates_absent_users_and_upsert_does_not() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let mut admin = daemon.clients(Some(&a.admin_key)).await.unwrap();

    let summary = sync(
        &mut admin,
        api::SyncMode::Full,
        vec![
            user(
                "e1",
                "Elisa@Example.edu",
                "elisa.zoom@example.edu",
                Instructor,
            ),
            user("e2", "bob@example.edu", "", Student),
            user("e3", "carol@example.edu", "", Admin),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.received, summary.applied, summary.created),
        (3, 3, 3)
    );

    // UPSERT: only adds and updates; bob and carol stay active.
    let summary = sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![user("e4", "dan@example.edu", "", Student)],
    )
    .await
    .unwrap();
    assert_eq!((summary.created, summary.deactivated), (1, 0));
    lookup(&mut admin, "bob@example.edu").await.unwrap();

    // FULL without bob and dan: they are deactivated, not deleted.
    let summary = sync(
        &mut admin,
        api::SyncMode::Full,
        vec![
            user(
                "e1",
                "elisa@example.edu",
                "elisa.zoom@example.edu",
                Instructor,
            ),
            user("e3", "carol@example.edu", "", Instructor),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        (
            summary.created,
            summary.updated,
            summary.unchanged,
            summary.deactivated
        ),
        (0, 1, 1, 2),
        "{summary:?}"
    );
    assert_status(
        lookup(&mut admin, "bob@example.edu").await,
        Code::NotFound,
        "no active user",
    );
    let users = all_users(&mut admin).await;
    assert_eq!(users.len(), 4, "deactivated users are kept");
    let bob = users.iter().find(|u| u.external_id == "e2").unwrap();
    assert!(!bob.active);
    // A later sync brings bob back.
    let summary = sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![user("e2", "bob@example.edu", "", Student)],
    )
    .await
    .unwrap();
    assert_eq!(summary.updated, 1);
    assert!(lookup(&mut admin, "BOB@example.edu").await.unwrap().active);
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn lookups_match_email_or_alternate_case_insensitively() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let mut admin = daemon.clients(Some(&a.admin_key)).await.unwrap();
    sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![user(
            "e1",
            " Elisa@Example.EDU ",
            "E.Zoom@Example.edu",
            Instructor,
        )],
    )
    .await
    .unwrap();
    let by_primary = lookup(&mut admin, "elisa@example.edu").await.unwrap();
    let by_alternate = lookup(&mut admin, "  e.zoom@EXAMPLE.edu").await.unwrap();
    assert_eq!(by_primary.user_id, by_alternate.user_id);
    assert_eq!(by_primary.email, "elisa@example.edu");
    assert_eq!(by_primary.alternate_zoom_email, "e.zoom@example.edu");
    assert_status(
        lookup(&mut admin, "nobody@example.edu").await,
        Code::NotFound,
        "",
    );
    assert_status(
        lookup(&mut admin, "   ").await,
        Code::InvalidArgument,
        "email",
    );
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn invalid_and_duplicate_records_are_rejected_one_by_one() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let mut admin = daemon.clients(Some(&a.admin_key)).await.unwrap();
    sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![user("held", "held@example.edu", "", Student)],
    )
    .await
    .unwrap();
    let summary = sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![
            user("ok1", "ok1@example.edu", "", Student),
            user("bad-email", "not-an-email", "", Student),
            user("bad-alt", "x@example.edu", "also bad", Student),
            user("", "noid@example.edu", "", Student),
            user(
                "norole",
                "norole@example.edu",
                "",
                api::UserRole::Unspecified,
            ),
            user("ok1", "other@example.edu", "", Student),
            user("dup-email", "OK1@example.edu", "", Student),
            user("dup-alt", "fresh@example.edu", "ok1@example.edu", Student),
            user("taken", "held@example.edu", "", Student),
            user("ok2", "ok2@example.edu", "", Instructor),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.received, summary.applied, summary.created),
        (10, 2, 2),
        "{summary:?}"
    );
    let reasons: Vec<(u32, &str)> = summary
        .rejected
        .iter()
        .map(|r| (r.record_index, r.reason.as_str()))
        .collect();
    let expect = [
        (1, "email:"),
        (2, "alternate_zoom_email:"),
        (3, "external_id:"),
        (4, "role:"),
        (5, "external_id: duplicate of record 0"),
        (6, "email: ok1@example.edu is already used by record 0"),
        (7, "email: ok1@example.edu is already used by record 0"),
        (8, "belongs to active user with external_id held"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for ((index, reason), (want_index, want)) in reasons.iter().zip(expect) {
        assert_eq!(*index, want_index);
        assert!(
            reason.contains(want),
            "record {index}: {reason:?} should contain {want:?}"
        );
    }
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn swapping_emails_in_one_sync_works() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let mut admin = daemon.clients(Some(&a.admin_key)).await.unwrap();
    sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![
            user("x", "one@example.edu", "", Student),
            user("y", "two@example.edu", "", Student),
        ],
    )
    .await
    .unwrap();
    let summary = sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![
            user("x", "two@example.edu", "", Student),
            user("y", "one@example.edu", "", Student),
        ],
    )
    .await
    .unwrap();
    assert!(summary.rejected.is_empty(), "{summary:?}");
    assert_eq!(
        lookup(&mut admin, "one@example.edu")
            .await
            .unwrap()
            .external_id,
        "y"
    );
    assert_eq!(
        lookup(&mut admin, "two@example.edu")
            .await
            .unwrap()
            .external_id,
        "x"
    );
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn a_broken_stream_applies_nothing() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let mut admin = daemon.clients(Some(&a.admin_key)).await.unwrap();
    // A second header halfway through: the whole sync is refused.
    let result = sync(
        &mut admin,
        api::SyncMode::Upsert,
        vec![
            user("e1", "one@example.edu", "", Student),
            header(api::SyncMode::Full),
            user("e2", "two@example.edu", "", Student),
        ],
    )
    .await;
    assert_status(result, Code::InvalidArgument, "header");
    assert!(
        all_users(&mut admin).await.is_empty(),
        "nothing may be half applied"
    );
    // No header at all.
    let result = admin
        .users
        .sync_users(tokio_stream::iter(vec![user(
            "e1",
            "one@example.edu",
            "",
            Student,
        )]))
        .await;
    assert_status(result, Code::InvalidArgument, "header");
    // A FULL sync with no records would deactivate everyone: refused.
    assert_status(
        sync(&mut admin, api::SyncMode::Full, vec![]).await,
        Code::InvalidArgument,
        "FULL",
    );
    assert_status(
        sync(&mut admin, api::SyncMode::Unspecified, vec![]).await,
        Code::InvalidArgument,
        "header.mode",
    );
    assert!(all_users(&mut admin).await.is_empty());
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn a_batch_lookup_answers_each_email_in_order_within_the_institution() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let b = create_institution(&mut operator, "B").await.unwrap();
    let mut admin_a = daemon.clients(Some(&a.admin_key)).await.unwrap();
    let mut admin_b = daemon.clients(Some(&b.admin_key)).await.unwrap();
    sync(
        &mut admin_a,
        api::SyncMode::Full,
        vec![
            user(
                "e1",
                "elisa@example.edu",
                "elisa.zoom@example.edu",
                Instructor,
            ),
            user("e2", "bob@example.edu", "", Student),
        ],
    )
    .await
    .unwrap();
    let batch = |emails: Vec<String>| api::LookupUsersByEmailRequest {
        institution_id: String::new(),
        emails,
    };
    let asked: Vec<String> = [
        " ELISA@example.edu ",
        "nobody@example.edu",
        "Elisa.Zoom@Example.edu",
        "bob@example.edu",
    ]
    .map(String::from)
    .to_vec();
    let results = admin_a
        .users
        .lookup_users_by_email(batch(asked.clone()))
        .await
        .unwrap()
        .into_inner()
        .results;
    let answered: Vec<(&str, Option<&str>)> = results
        .iter()
        .map(|r| {
            (
                r.email.as_str(),
                r.user.as_ref().map(|u| u.external_id.as_str()),
            )
        })
        .collect();
    assert_eq!(
        answered,
        [
            (" ELISA@example.edu ", Some("e1")),
            ("nobody@example.edu", None),
            ("Elisa.Zoom@Example.edu", Some("e1")),
            ("bob@example.edu", Some("e2")),
        ]
    );
    for (result, email) in results.iter().zip(&asked) {
        let single = lookup(&mut admin_a, email).await.ok();
        assert_eq!(result.user, single, "{email}: as LookupUserByEmail answers");
    }

    // Another institution's admin sees none of A's users.
    let elsewhere = admin_b
        .users
        .lookup_users_by_email(batch(asked.clone()))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(elsewhere.len(), asked.len());
    assert!(elsewhere.iter().all(|r| r.user.is_none()));

    // 1,000 is the most one call asks about; an empty email is named.
    let full: Vec<String> = (0..1000).map(|i| format!("u{i}@example.edu")).collect();
    assert_eq!(
        admin_a
            .users
            .lookup_users_by_email(batch(full.clone()))
            .await
            .unwrap()
            .into_inner()
            .results
            .len(),
        1000
    );
    let mut too_many = full;
    too_many.push("bob@example.edu".into());
    assert_status(
        admin_a.users.lookup_users_by_email(batch(too_many)).await,
        Code::InvalidArgument,
        "between 1 and 1000",
    );
    assert_status(
        admin_a.users.lookup_users_by_email(batch(Vec::new())).await,
        Code::InvalidArgument,
        "between 1 and 1000",
    );
    assert_status(
        admin_a
            .users
            .lookup_users_by_email(batch(vec!["bob@example.edu".into(), "  ".into()]))
            .await,
        Code::InvalidArgument,
        "emails[1]",
    );
}
