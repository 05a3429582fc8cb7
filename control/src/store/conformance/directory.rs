//! Conformance checks for the user directory and its sync.

use crate::error::ErrorClass;
use crate::model::*;
use crate::store::{PageQuery, Store};

use super::{T0, assert_class, at, lookup, user_record};

/// FULL deactivates the absent, UPSERT leaves them; counts are exact;
/// deactivated users free their emails and come back on a later sync.
pub async fn user_sync_modes(store: &dyn Store) {
    let a = store
        .create_institution("sync a", T0)
        .await
        .expect("create a")
        .institution_id;
    let b = store
        .create_institution("sync b", T0)
        .await
        .expect("create b")
        .institution_id;
    let mut ada = user_record(
        0,
        "ada",
        "ada@example.edu",
        Some("ada.zoom@example.edu"),
        "Ada",
    );
    ada.role = UserRole::Instructor;
    let bob = user_record(1, "bob", "bob@example.edu", None, "Bob");
    let cy = user_record(2, "cy", "cy@example.edu", None, "Cy");

    let outcome = store
        .sync_users(UserSync {
            institution_id: a.to_string(),
            mode: SyncMode::Full,
            records: vec![ada.clone(), bob.clone(), cy.clone()],
            rejected_upfront: Vec::new(),
            now: at(1),
        })
        .await
        .expect("first sync");
    assert_eq!(
        outcome,
        SyncOutcome {
            created: 3,
            ..SyncOutcome::default()
        }
    );
    let ada_user = lookup(store, &a, "ada@example.edu")
        .await
        .expect("ada by email");
    assert_eq!(ada_user.external_id, "ada");
    assert_eq!(ada_user.institution_id, a);
    assert_eq!(
        ada_user.alternate_zoom_email.as_deref(),
        Some("ada.zoom@example.edu")
    );
    assert_eq!(ada_user.role, UserRole::Instructor);
    assert_eq!(ada_user.display_name, "Ada");
    assert!(ada_user.active);
    assert_eq!((ada_user.created_at, ada_user.updated_at), (at(1), at(1)));
    assert_eq!(
        lookup(store, &a, "ada.zoom@example.edu")
            .await
            .map(|u| u.user_id),
        Some(ada_user.user_id.clone()),
        "lookup finds the alternate email"
    );
    assert_eq!(lookup(store, &a, "nobody@example.edu").await, None);
    assert_eq!(
        lookup(store, &b, "ada@example.edu").await,
        None,
        "lookups are per institution"
    );
    assert_eq!(
        store
            .get_user(&a, &ada_user.user_id)
            .await
            .expect("get user"),
        ada_user
    );
    assert_class(
        store.get_user(&b, &ada_user.user_id).await,
        ErrorClass::NotFound,
        "get user through another institution",
    );

    let mut cy_renamed = cy.clone();
    cy_renamed.display_name = "Cy Young".into();
    cy_renamed.record_index = 1;
    let outcome = store
        .sync_users(UserSync {
            institution_id: a.to_string(),
            mode: SyncMode::Upsert,
            records: vec![bob.clone(), cy_renamed.clone()],
            rejected_upfront: Vec::new(),
            now: at(2),
        })
        .await
        .expect("upsert sync");
    assert_eq!(
        outcome,
        SyncOutcome {
            updated: 1,
            unchanged: 1,
            ..SyncOutcome::default()
        }
    );
    let cy_user = lookup(store, &a, "cy@example.edu")
        .await
        .expect("cy by email");
    assert_eq!(cy_user.display_name, "Cy Young");
    assert_eq!(
        (cy_user.created_at, cy_user.updated_at),
        (at(1), at(2)),
        "an update keeps created_at"
    );
    assert!(
        lookup(store, &a, "ada@example.edu").await.is_some(),
        "UPSERT leaves users absent from the stream alone"
    );

    let outcome = store
        .sync_users(UserSync {
            institution_id: a.to_string(),
            mode: SyncMode::Full,
            records: vec![ada.clone(), bob.clone()],
            rejected_upfront: Vec::new(),
            now: at(3),
        })
        .await
        .expect("full sync without cy");
    assert_eq!(
        outcome,
        SyncOutcome {
            unchanged: 2,
            deactivated: 1,
            ..SyncOutcome::default()
        }
    );
    let cy_inactive = store
        .get_user(&a, &cy_user.user_id)
        .await
        .expect("deactivated user stays retrievable");
    assert!(
        !cy_inactive.active,
        "FULL deactivates users absent from the stream"
    );
    assert_eq!(cy_inactive.updated_at, at(3));
    assert_eq!(
        lookup(store, &a, "cy@example.edu").await,
        None,
        "lookup skips inactive users"
    );
    // A batch answers exactly what one lookup per email would, in order,
    // repeats included.
    let batch: Vec<String> = [
        "ada@example.edu",
        "cy@example.edu",
        "ada.zoom@example.edu",
        "nobody@example.edu",
        "bob@example.edu",
        "ada@example.edu",
    ]
    .map(String::from)
    .to_vec();
    let mut one_by_one = Vec::new();
    for email in &batch {
        one_by_one.push(lookup(store, &a, email).await);
    }
    assert_eq!(
        store
            .lookup_users_by_email(&a, &batch)
            .await
            .expect("batch lookup"),
        one_by_one
    );
    assert_eq!(
        one_by_one.iter().filter(|u| u.is_some()).count(),
        4,
        "ada twice, her alternate email, bob"
    );
    // A batch as large as a call may carry (a backend may run it elsewhere
    // than a small one) answers the same way.
    let large: Vec<String> = batch.iter().cycle().take(1000).cloned().collect();
    let expected: Vec<_> = one_by_one.iter().cycle().take(1000).cloned().collect();
    assert_eq!(
        store
            .lookup_users_by_email(&a, &large)
            .await
            .expect("large batch lookup"),
        expected
    );
    assert_eq!(
        store
            .lookup_users_by_email(&b, &batch)
            .await
            .expect("batch lookup elsewhere"),
        vec![None; batch.len()],
        "batch lookups are per institution"
    );
    let active = store
        .list_users(&a, false, &PageQuery::first(0))
        .await
        .expect("list active");
    assert_eq!(
        active
            .items
            .iter()
            .map(|u| u.external_id.as_str())
            .collect::<Vec<_>>(),
        vec!["ada", "bob"],
        "inactive users are listed only when asked for"
    );
    let everyone = store
        .list_users(&a, true, &PageQuery::first(0))
        .await
        .expect("list all");
    assert_eq!(everyone.items.len(), 3);

    let dan = user_record(0, "dan", "cy@example.edu", None, "Dan");
    let outcome = store
        .sync_users(UserSync {
            institution_id: a.to_string(),
            mode: SyncMode::Upsert,
            records: vec![dan],
            rejected_upfront: Vec::new(),
            now: at(4),
        })
        .await
        .expect("give an inactive user's email to a new user");
    assert_eq!(
        outcome,
        SyncOutcome {
            created: 1,
            ..SyncOutcome::default()
        }
    );
    assert_eq!(
        lookup(store, &a, "cy@example.edu")
            .await
            .map(|u| u.external_id),
        Some("dan".to_string()),
        "an inactive user's email is free"
    );

    let mut cy_back = cy_renamed.clone();
    cy_back.record_index = 0;
    cy_back.email = "cy.new@example.edu".into();
    let outcome = store
        .sync_users(UserSync {
            institution_id: a.to_string(),
            mode: SyncMode::Upsert,
            records: vec![cy_back],
            rejected_upfront: Vec::new(),
            now: at(5),
        })
        .await
        .expect("reactivate cy");
    assert_eq!(
        outcome,
        SyncOutcome {
            updated: 1,
            ..SyncOutcome::default()
        }
    );
    let cy_active = lookup(store, &a, "cy.new@example.edu")
        .await
        .expect("reactivated cy");
    assert_eq!(
        cy_active.user_id, cy_user.user_id,
        "a returning user keeps its id"
    );
    assert!(cy_active.active);
    assert_eq!(cy_active.created_at, at(1));

    let first = store
        .list_users(&a, true, &PageQuery::first(3))
        .await
        .expect("list page 1");
    assert_eq!(first.items.len(), 3);
    let rest = store
        .list_users(
            &a,
            true,
            &PageQuery {
                after: first.next_after.clone(),
                size: 3,
            },
        )
        .await
        .expect("list page 2");
    assert_eq!(rest.items.len(), 1, "4 users in pages of 3");
    assert_eq!(rest.next_after, None);
    assert!(
        store
            .list_users(&b, true, &PageQuery::first(0))
            .await
            .expect("list b")
            .items
            .is_empty(),
        "users are listed only in their institution"
    );
}

/// Duplicates and email conflicts reject the later record with a reason
/// naming the field; swaps, upfront rejections and atomicity.
pub async fn user_sync_conflicts(store: &dyn Store) {
    let a = store
        .create_institution("conflicts", T0)
        .await
        .expect("create")
        .institution_id;
    let erin = user_record(0, "erin", "erin@example.edu", None, "Erin");
    let fay = user_record(1, "fay", "fay@example.edu", None, "Fay");
    store
        .sync_users(UserSync {
            institution_id: a.to_string(),
            mode: SyncMode::Upsert,
            records: vec![erin, fay],
            rejected_upfront: Vec::new(),
            now: at(1),
        })
        .await
        .expect("seed users");

    let records = vec![
        user_record(0, "gus", "gus@example.edu", None, "Gus"),
        user_record(1, "gus", "gus.two@example.edu", None, "Gus Two"),
        user_record(2, "hal", "gus@example.edu", None, "Hal"),
        user_record(3, "ida", "ida@example.edu", Some("erin@example.edu"), "Ida"),
        user_record(4, "jo", "jo@example.edu", None, "Jo"),
    ];
    let mut outcome = store
        .sync_users(UserSync {
            institution_id: a.to_string(),
            mode: SyncMode::Upsert,
            records,
            rejected_upfront: Vec::new(),
            now: at(2),
        })
        .await
        .expect("sync with conflicts");
    outcome.rejected.sort_by_key(|r| r.record_index);
    assert_eq!(
        (
            outcome.created,
            outcome.updated,
            outcome.unchanged,
            outcome.deactivated
        ),
        (2, 0, 0, 0)
    );
    let rejected: Vec<(u32, &str, &str)> = outcome
        .rejected
        .iter()
        .map(|r| (r.record_index, r.external_id.as_str(), r.email.as_str()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "gus", "gus.two@example.edu"),
            (2, "hal", "gus@example.edu"),
            (3, "ida", "ida@example.edu"),
        ],
        "the later duplicate and the conflicting records are rejected"
    );
    assert!(
        outcome.rejected[0].reason.contains("external_id"),
        "reason names external_id: {:?}",
        outcome.rejected[0].reason
    );
    assert!(
        outcome.rejected[1].reason.contains("email"),
        "reason names email: {:?}",
        outcome.rejected[1].reason
    );
    assert!(
        outcome.rejected[2].reason.contains("email"),
        "reason names email: {:?}",
        outcome.rejected[2].reason
    );
    assert_eq!(
        lookup(store, &a, "gus@example.edu")
            .await
            .map(|u| u.display_name),
        Some("Gus".to_string()),
        "the first record with an external id or email wins"
    );
    assert_eq!(lookup(store, &a, "gus.two@example.edu").await, None);
    assert_eq!(
        lookup(store, &a, "ida@example.edu").await,
        None,
        "a rejected record is not applied"
    );
    assert_eq!(
        lookup(store, &a, "erin@example.edu")
            .await
            .map(|u| u.external_id),
        Some("erin".to_string()),
        "an active user absent from an UPSERT keeps its email"
    );

    let erin_id = lookup(store, &a, "erin@example.edu")
        .await
        .expect("erin")
        .user_id;
    let fay_id = lookup(store, &a, "fay@example.edu")
        .await
        .expect("fay")
        .user_id;
    let swap = vec![
        user_record(0, "erin", "fay@example.edu", None, "Erin"),
        user_record(1, "fay", "erin@example.edu", None, "Fay"),
    ];
    let outcome = store
        .sync_users(UserSync {
            institution_id: a.to_string(),
            mode: SyncMode::Upsert,
            records: swap.clone(),
            rejected_upfront: Vec::new(),
            now: at(3),
        })
        .await
        .expect("swap emails");
    assert_eq!(
        outcome,
        SyncOutcome {
            updated: 2,
            ..SyncOutcome::default()
        },
        "two users may swap emails"
    );
    assert_eq!(
        lookup(store, &a, "fay@example.edu")
            .await
            .map(|u| u.user_id),
        Some(erin_id)
    );
    assert_eq!(
        lookup(store, &a, "erin@example.edu")
            .await
            .map(|u| u.user_id),
        Some(fay_id)
    );

    // FULL without gus and jo: jo's record was rejected upfront, so jo stays;
    // gus is deactivated, which frees gus@ for kim in the same sync.
    let upfront = RejectedRecord {
        record_index: 3,
        external_id: "jo".into(),
        email: "jo@example.edu".into(),
        reason: "role: unknown role \"teacher\"".into(),
    };
    let mut records = swap;
    records.push(user_record(2, "kim", "gus@example.edu", None, "Kim"));
    let outcome = store
        .sync_users(UserSync {
            institution_id: a.to_string(),
            mode: SyncMode::Full,
            records,
            rejected_upfront: vec![upfront.clone()],
            now: at(4),
        })
        .await
        .expect("full sync with an upfront rejection");
    assert_eq!(
        outcome,
        SyncOutcome {
            created: 1,
            unchanged: 2,
            deactivated: 1,
            rejected: vec![upfront],
            ..SyncOutcome::default()
        },
        "upfront rejections are echoed and their users are not deactivated"
    );
    assert_eq!(
        lookup(store, &a, "jo@example.edu").await.map(|u| u.active),
        Some(true),
        "a user whose record was rejected upfront stays active"
    );
    assert_eq!(
        lookup(store, &a, "gus@example.edu")
            .await
            .map(|u| u.external_id),
        Some("kim".to_string()),
        "FULL hands a deactivated user's email to another in the same sync"
    );

    let before = store
        .list_users(&a, true, &PageQuery::first(0))
        .await
        .expect("list");
    assert_class(
        store
            .sync_users(UserSync {
                institution_id: "inst_conformance_missing".to_string(),
                mode: SyncMode::Full,
                records: vec![user_record(0, "erin", "erin@example.edu", None, "Erin")],
                rejected_upfront: Vec::new(),
                now: at(5),
            })
            .await,
        ErrorClass::NotFound,
        "sync into an unknown institution",
    );
    let after = store
        .list_users(&a, true, &PageQuery::first(0))
        .await
        .expect("list");
    assert_eq!(before.items, after.items, "a failed sync changes nothing");
    assert!(
        store
            .list_users("inst_conformance_missing", true, &PageQuery::first(0))
            .await
            .map(|page| page.items.is_empty())
            .unwrap_or(true),
        "a failed sync creates no users"
    );
}
