//! Conformance checks for configurations and their deletion.

use crate::error::ErrorClass;
use crate::model::*;
use crate::store::{PageQuery, Store};

use super::{T0, assert_class, at, create_tenant, install_new_account, unique_hash};

/// Names are unique per institution (case-insensitively); reads, updates and
/// token rotation are scoped to the owning institution.
pub async fn configurations(store: &dyn Store) {
    let a = store
        .create_institution("config a", T0)
        .await
        .expect("create a")
        .institution_id;
    let b = store
        .create_institution("config b", T0)
        .await
        .expect("create b")
        .institution_id;
    let views = vec!["speaker_view".to_string(), "gallery_view".to_string()];
    let token_1 = unique_hash("zcfg");
    let main = store
        .create_configuration(NewConfiguration {
            institution_id: a.to_string(),
            display_name: "Main".to_string(),
            view_priority: views.to_vec(),
            policy: Default::default(),
            token_hash: token_1.clone(),
            now: at(1),
        })
        .await
        .expect("create Main");
    assert_eq!(main.institution_id, a);
    assert_eq!(main.display_name, "Main");
    assert_eq!(
        main.view_priority, views,
        "view priority round-trips in order"
    );
    assert_eq!(main.created_at, at(1));
    assert_eq!(main.token_issued_at, at(1));
    assert_eq!(main.installed_account_count, 0);

    assert_class(
        store
            .create_configuration(NewConfiguration {
                institution_id: a.to_string(),
                display_name: "main".to_string(),
                view_priority: Vec::new(),
                policy: Default::default(),
                token_hash: unique_hash("zcfg"),
                now: at(2),
            })
            .await,
        ErrorClass::AlreadyExists,
        "configuration names are unique per institution, ignoring case",
    );
    let main_b = store
        .create_configuration(NewConfiguration {
            institution_id: b.to_string(),
            display_name: "Main".to_string(),
            view_priority: Vec::new(),
            policy: Default::default(),
            token_hash: unique_hash("zcfg"),
            now: at(2),
        })
        .await
        .expect("the same name is allowed in another institution");
    assert!(
        main_b.view_priority.is_empty(),
        "an empty view priority stays empty"
    );
    let second = store
        .create_configuration(NewConfiguration {
            institution_id: a.to_string(),
            display_name: "Second".to_string(),
            view_priority: Vec::new(),
            policy: Default::default(),
            token_hash: unique_hash("zcfg"),
            now: at(3),
        })
        .await
        .expect("create Second");
    assert_class(
        store
            .create_configuration(NewConfiguration {
                institution_id: "inst_conformance_missing".to_string(),
                display_name: "X".to_string(),
                view_priority: Vec::new(),
                policy: Default::default(),
                token_hash: unique_hash("zcfg"),
                now: at(3),
            })
            .await,
        ErrorClass::NotFound,
        "create configuration in unknown institution",
    );

    assert_eq!(
        store
            .get_configuration(&a, &main.configuration_id)
            .await
            .expect("get"),
        main
    );
    assert_class(
        store.get_configuration(&b, &main.configuration_id).await,
        ErrorClass::NotFound,
        "get configuration through another institution",
    );
    let listed = store
        .list_configurations(&a, &PageQuery::first(1))
        .await
        .expect("list configurations");
    assert_eq!(listed.items, vec![main.clone()], "first page");
    let listed = store
        .list_configurations(
            &a,
            &PageQuery {
                after: listed.next_after,
                size: 1,
            },
        )
        .await
        .expect("list configurations");
    assert_eq!(listed.items, vec![second.clone()], "second page");
    assert_eq!(listed.next_after, None, "no page after the last");

    let renamed = store
        .update_configuration(
            &a,
            &main.configuration_id,
            ConfigurationUpdate {
                display_name: Some("Primary".into()),
                view_priority: None,
                ..Default::default()
            },
        )
        .await
        .expect("rename");
    assert_eq!(renamed.display_name, "Primary");
    assert_eq!(
        renamed.view_priority, views,
        "an update without views keeps them"
    );
    let reordered = store
        .update_configuration(
            &a,
            &main.configuration_id,
            ConfigurationUpdate {
                display_name: None,
                view_priority: Some(vec!["gallery_view".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("reorder views");
    assert_eq!(
        reordered.display_name, "Primary",
        "an update without a name keeps it"
    );
    assert_eq!(reordered.view_priority, vec!["gallery_view".to_string()]);
    let recased = store
        .update_configuration(
            &a,
            &main.configuration_id,
            ConfigurationUpdate {
                display_name: Some("PRIMARY".into()),
                view_priority: None,
                ..Default::default()
            },
        )
        .await
        .expect("a configuration may change the case of its own name");
    assert_eq!(recased.display_name, "PRIMARY");
    assert_class(
        store
            .update_configuration(
                &a,
                &second.configuration_id,
                ConfigurationUpdate {
                    display_name: Some("primary".into()),
                    view_priority: None,
                    ..Default::default()
                },
            )
            .await,
        ErrorClass::AlreadyExists,
        "renaming onto another configuration's name",
    );
    assert_class(
        store
            .update_configuration(&b, &main.configuration_id, ConfigurationUpdate::default())
            .await,
        ErrorClass::NotFound,
        "update configuration through another institution",
    );

    assert_eq!(
        store
            .find_configuration_by_token(&token_1)
            .await
            .expect("find by token")
            .map(|c| c.configuration_id),
        Some(main.configuration_id.clone()),
        "the configuration is found by its token hash"
    );
    let token_2 = unique_hash("zcfg");
    let rotated = store
        .rotate_configuration_token(TokenRotation {
            institution_id: a.to_string(),
            configuration_id: main.configuration_id.to_string(),
            token_hash: token_2.clone(),
            now: at(50),
        })
        .await
        .expect("rotate token");
    assert_eq!(
        rotated.token_issued_at,
        at(50),
        "rotation records the issue time"
    );
    assert_eq!(rotated.created_at, at(1), "rotation keeps created_at");
    assert_eq!(
        store
            .find_configuration_by_token(&token_1)
            .await
            .expect("find by old token"),
        None,
        "the old token no longer finds the configuration"
    );
    assert_eq!(
        store
            .find_configuration_by_token(&token_2)
            .await
            .expect("find by new token")
            .map(|c| c.configuration_id),
        Some(main.configuration_id.clone()),
        "the new token finds the configuration"
    );
    assert_class(
        store
            .rotate_configuration_token(TokenRotation {
                institution_id: b.to_string(),
                configuration_id: main.configuration_id.to_string(),
                token_hash: unique_hash("zcfg"),
                now: at(60),
            })
            .await,
        ErrorClass::NotFound,
        "rotate through another institution",
    );
    assert!(
        store
            .find_configuration_by_token(&token_2)
            .await
            .expect("find")
            .is_some(),
        "a refused rotation leaves the token alone"
    );
}

/// Deleting a configuration uninstalls exactly its installed accounts.
pub async fn configuration_delete(store: &dyn Store) {
    let tenant = create_tenant(store, "delete").await;
    let other = create_tenant(store, "delete other").await;
    let a = &tenant.institution_id;
    let token = unique_hash("zcfg");
    let doomed = store
        .create_configuration(NewConfiguration {
            institution_id: a.to_string(),
            display_name: "Doomed".to_string(),
            view_priority: Vec::new(),
            policy: Default::default(),
            token_hash: token.clone(),
            now: at(1),
        })
        .await
        .expect("create configuration");
    let gone_before = install_new_account(store, &doomed.configuration_id).await;
    store
        .uninstall_account(AccountUninstall {
            institution_id: Some(a.to_string()),
            zoom_account_id: gone_before.to_string(),
            now: at(2),
        })
        .await
        .expect("uninstall");
    let mut installed = vec![
        install_new_account(store, &doomed.configuration_id).await,
        install_new_account(store, &doomed.configuration_id).await,
    ];
    installed.sort();
    let count = store
        .get_configuration(a, &doomed.configuration_id)
        .await
        .expect("get")
        .installed_account_count;
    assert_eq!(
        count, 2,
        "installed_account_count counts installed accounts only"
    );

    assert_class(
        store
            .delete_configuration(&other.institution_id, &doomed.configuration_id, at(3))
            .await,
        ErrorClass::NotFound,
        "delete through another institution",
    );
    let mut uninstalled = store
        .delete_configuration(a, &doomed.configuration_id, at(10))
        .await
        .expect("delete configuration");
    uninstalled.sort();
    assert_eq!(
        uninstalled, installed,
        "delete returns the accounts it uninstalled"
    );

    assert_class(
        store.get_configuration(a, &doomed.configuration_id).await,
        ErrorClass::NotFound,
        "a deleted configuration is gone",
    );
    assert_eq!(
        store
            .find_configuration_by_token(&token)
            .await
            .expect("find by token"),
        None,
        "a deleted configuration's token finds nothing"
    );
    for account in &installed {
        assert_eq!(
            store
                .installed_account(account)
                .await
                .expect("installed account"),
            None,
            "account {account} is uninstalled with its configuration"
        );
        let read = store.get_account(a, account).await.expect("get account");
        assert_eq!(
            read.uninstalled_at,
            Some(at(10)),
            "uninstalled at the delete time"
        );
    }
    assert!(
        store
            .installed_account(&tenant.zoom_account_id)
            .await
            .expect("installed account")
            .is_some(),
        "accounts of other configurations stay installed"
    );
    let listed = store
        .list_configurations(a, &PageQuery::first(0))
        .await
        .expect("list configurations");
    assert_eq!(
        listed
            .items
            .iter()
            .map(|c| &c.configuration_id)
            .collect::<Vec<_>>(),
        vec![&tenant.configuration_id],
        "a deleted configuration is not listed"
    );
    store
        .create_configuration(NewConfiguration {
            institution_id: a.to_string(),
            display_name: "doomed".to_string(),
            view_priority: Vec::new(),
            policy: Default::default(),
            token_hash: unique_hash("zcfg"),
            now: at(11),
        })
        .await
        .expect("a deleted configuration's name is free again");
}
