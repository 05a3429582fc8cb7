//! Conformance checks for the operator token, institutions and admin keys.

use crate::error::ErrorClass;
use crate::model::*;
use crate::store::{PageQuery, Store};

use super::{assert_class, at, create_tenant, unique_hash};

/// The operator token hash is stored once; later inits keep the first.
pub async fn operator_token(store: &dyn Store) {
    let stored = store
        .operator_token_hash()
        .await
        .expect("read operator hash");
    assert!(
        stored.is_none(),
        "a fresh store has no operator token hash (run on a fresh store)"
    );
    let first = unique_hash("operator");
    let second = unique_hash("operator");
    assert!(
        store
            .init_operator_token_hash(first.clone())
            .await
            .expect("init operator hash"),
        "the first init stores the hash"
    );
    assert!(
        !store
            .init_operator_token_hash(second)
            .await
            .expect("init operator hash again"),
        "a second init reports that nothing was stored"
    );
    let stored = store
        .operator_token_hash()
        .await
        .expect("read operator hash");
    assert!(
        stored.is_some_and(|hash| hash.matches(&first)),
        "the first hash is kept"
    );
}

/// Institutions are created, read back, listed in creation order and paged.
pub async fn institutions(store: &dyn Store) {
    let mut existing = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_institutions(&PageQuery { after, size: 1000 })
            .await
            .expect("list institutions");
        existing.extend(page.items.into_iter().map(|i| i.institution_id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    let mut created = Vec::new();
    for index in 0..5 {
        let institution = store
            .create_institution(&format!("Paging University {index}"), at(index))
            .await
            .expect("create institution");
        assert_eq!(
            institution.display_name,
            format!("Paging University {index}")
        );
        assert_eq!(
            institution.created_at,
            at(index),
            "created_at is the given now"
        );
        let read = store
            .get_institution(&institution.institution_id)
            .await
            .expect("get institution");
        assert_eq!(read, institution, "get returns what create returned");
        created.push(institution);
    }

    let total = existing.len() + created.len();
    let mut listed: Vec<Institution> = Vec::new();
    let mut page_sizes = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_institutions(&PageQuery { after, size: 2 })
            .await
            .expect("list institutions");
        assert!(page.items.len() <= 2, "a page holds at most its size");
        page_sizes.push(page.items.len());
        listed.extend(page.items.iter().cloned());
        match page.next_after {
            Some(next) => {
                assert_eq!(
                    Some(&next),
                    page.items.last().map(|i| &i.institution_id),
                    "next_after is the last id of the page"
                );
                after = Some(next);
            }
            None => break,
        }
        assert!(page_sizes.len() <= total, "paging does not terminate");
    }
    let expected_sizes: Vec<usize> = (0..total.div_ceil(2))
        .map(|page| (total - 2 * page).min(2))
        .collect();
    assert_eq!(
        page_sizes, expected_sizes,
        "pages of 2 over {total} institutions, next_after None on the last"
    );
    let listed_ids: Vec<&String> = listed.iter().map(|i| &i.institution_id).collect();
    assert!(listed_ids.is_sorted(), "institutions are listed by id");
    assert_eq!(
        &listed[existing.len()..],
        created.as_slice(),
        "new institutions are listed last, in creation order"
    );

    assert_class(
        store.get_institution("inst_conformance_missing").await,
        ErrorClass::NotFound,
        "get unknown institution",
    );
}

/// Admin keys: found by hash until revoked, revoked once, listed per institution.
pub async fn admin_keys(store: &dyn Store) {
    let a = create_tenant(store, "keys a").await.institution_id;
    let b = create_tenant(store, "keys b").await.institution_id;
    let (hash_1, hash_2, hash_b) = (unique_hash("key"), unique_hash("key"), unique_hash("key"));
    let key_1 = store
        .create_admin_key(NewAdminKey {
            institution_id: a.to_string(),
            name: "ops laptop".to_string(),
            hash: hash_1.clone(),
            now: at(1),
        })
        .await
        .expect("create key 1");
    assert_eq!(key_1.institution_id, a);
    assert_eq!(key_1.name, "ops laptop");
    assert_eq!(key_1.created_at, at(1));
    assert_eq!(key_1.revoked_at, None, "a new key is not revoked");
    let key_2 = store
        .create_admin_key(NewAdminKey {
            institution_id: a.to_string(),
            name: "ci".to_string(),
            hash: hash_2.clone(),
            now: at(2),
        })
        .await
        .expect("create key 2");
    let key_b = store
        .create_admin_key(NewAdminKey {
            institution_id: b.to_string(),
            name: "other".to_string(),
            hash: hash_b.clone(),
            now: at(3),
        })
        .await
        .expect("create key b");
    assert_class(
        store
            .create_admin_key(NewAdminKey {
                institution_id: "inst_conformance_missing".to_string(),
                name: "x".to_string(),
                hash: unique_hash("key"),
                now: at(4),
            })
            .await,
        ErrorClass::NotFound,
        "create key in unknown institution",
    );

    assert_eq!(
        store.get_admin_key(&key_1.key_id).await.expect("get key"),
        key_1
    );
    assert_eq!(
        store.find_admin_key(&hash_1).await.expect("find key"),
        Some(key_1.clone()),
        "an unrevoked key is found by its hash"
    );
    assert_eq!(
        store
            .find_admin_key(&unique_hash("key"))
            .await
            .expect("find key"),
        None,
        "an unknown hash finds nothing"
    );

    let first = store
        .list_admin_keys(&a, &PageQuery::first(1))
        .await
        .expect("list keys");
    assert_eq!(first.items, vec![key_1.clone()], "first page of one key");
    assert_eq!(first.next_after.as_deref(), Some(key_1.key_id.as_str()));
    let second = store
        .list_admin_keys(
            &a,
            &PageQuery {
                after: first.next_after,
                size: 1,
            },
        )
        .await
        .expect("list keys");
    assert_eq!(second.items, vec![key_2.clone()], "second page of one key");
    assert_eq!(second.next_after, None, "no page after the last key");
    let listed_b = store
        .list_admin_keys(&b, &PageQuery::first(0))
        .await
        .expect("list keys");
    assert_eq!(
        listed_b.items,
        vec![key_b],
        "keys are listed only in their institution"
    );

    let revoked = store
        .revoke_admin_key(&key_1.key_id, at(10))
        .await
        .expect("revoke key");
    assert_eq!(revoked.revoked_at, Some(at(10)), "revoke records its time");
    assert_eq!(
        store.find_admin_key(&hash_1).await.expect("find key"),
        None,
        "a revoked key is not found"
    );
    assert_eq!(
        store.find_admin_key(&hash_2).await.expect("find key"),
        Some(key_2),
        "revoking one key leaves the others"
    );
    let revoked_again = store
        .revoke_admin_key(&key_1.key_id, at(20))
        .await
        .expect("revoke key twice");
    assert_eq!(
        revoked_again.revoked_at,
        Some(at(10)),
        "the first revocation time is kept"
    );
    assert_eq!(
        store
            .get_admin_key(&key_1.key_id)
            .await
            .expect("get key")
            .revoked_at,
        Some(at(10))
    );
    assert_class(
        store.get_admin_key("key_conformance_missing").await,
        ErrorClass::NotFound,
        "get unknown key",
    );
}
