//! Conformance checks for installed Zoom accounts.

use crate::error::ErrorClass;
use crate::model::*;
use crate::secrets::Sealed;
use crate::store::{PageQuery, Store, new_id};

use super::{T0, assert_class, at, create_tenant, unique_hash};

/// One account, one institution: installs are idempotent per configuration
/// and refused elsewhere until uninstalled.
pub async fn accounts(store: &dyn Store) {
    let tenant_a = create_tenant(store, "accounts a").await;
    let tenant_b = create_tenant(store, "accounts b").await;
    let (a, b) = (&tenant_a.institution_id, &tenant_b.institution_id);
    let other_configuration_a = store
        .create_configuration(NewConfiguration {
            institution_id: a.to_string(),
            display_name: "Other".to_string(),
            view_priority: Vec::new(),
            policy: Default::default(),
            token_hash: unique_hash("zcfg"),
            now: T0,
        })
        .await
        .expect("create configuration");
    let account_id = new_id("zacct");
    let credentials_1 = SealedOAuthCredentials {
        client_id: "client-1".into(),
        sealed_client_secret: Sealed(vec![0, 1, 2, 0xfe, 0xff]),
    };
    let install = |configuration_id: &str, plan, oauth, now| AccountInstall {
        configuration_id: configuration_id.to_string(),
        zoom_account_id: account_id.clone(),
        plan,
        oauth,
        now,
    };

    let installed = store
        .install_account(install(
            &tenant_a.configuration_id,
            ZoomPlan::Pro,
            Some(credentials_1.clone()),
            at(1),
        ))
        .await
        .expect("install");
    let expected = ZoomAccount {
        zoom_account_id: account_id.clone(),
        institution_id: a.clone(),
        configuration_id: tenant_a.configuration_id.clone(),
        plan: ZoomPlan::Pro,
        installed_at: at(1),
        uninstalled_at: None,
        oauth: Some(credentials_1.clone()),
    };
    assert_eq!(
        installed, expected,
        "install binds the account to the configuration's institution"
    );
    assert_eq!(
        store
            .get_account(a, &account_id)
            .await
            .expect("get account"),
        expected
    );
    assert_eq!(
        store
            .installed_account(&account_id)
            .await
            .expect("installed account"),
        Some(expected.clone())
    );
    assert_class(
        store.get_account(b, &account_id).await,
        ErrorClass::NotFound,
        "get account through another institution",
    );

    let credentials_2 = SealedOAuthCredentials {
        client_id: "client-2".into(),
        sealed_client_secret: Sealed(vec![9, 8, 7]),
    };
    let reinstalled = store
        .install_account(install(
            &tenant_a.configuration_id,
            ZoomPlan::Business,
            Some(credentials_2.clone()),
            at(5),
        ))
        .await
        .expect("reinstall into the same configuration");
    assert_eq!(
        reinstalled.installed_at,
        at(1),
        "a reinstall keeps installed_at"
    );
    assert_eq!(
        reinstalled.plan,
        ZoomPlan::Business,
        "a reinstall refreshes the plan"
    );
    assert_eq!(
        reinstalled.oauth,
        Some(credentials_2.clone()),
        "a reinstall refreshes credentials"
    );
    let without_credentials = store
        .install_account(install(
            &tenant_a.configuration_id,
            ZoomPlan::Business,
            None,
            at(6),
        ))
        .await
        .expect("reinstall without credentials");
    assert_eq!(
        without_credentials.oauth,
        Some(credentials_2),
        "a reinstall without credentials keeps the stored ones"
    );

    assert_class(
        store
            .install_account(install(
                &tenant_b.configuration_id,
                ZoomPlan::Pro,
                None,
                at(7),
            ))
            .await,
        ErrorClass::AlreadyExists,
        "install into another institution while installed",
    );
    assert_class(
        store
            .install_account(install(
                &other_configuration_a.configuration_id,
                ZoomPlan::Pro,
                None,
                at(7),
            ))
            .await,
        ErrorClass::AlreadyExists,
        "install into another configuration of the same institution",
    );
    assert_class(
        store
            .install_account(install(
                "zcfg_conformance_missing",
                ZoomPlan::Pro,
                None,
                at(7),
            ))
            .await,
        ErrorClass::NotFound,
        "install into an unknown configuration",
    );
    let still = store
        .get_account(a, &account_id)
        .await
        .expect("get account");
    assert_eq!(
        still.configuration_id, tenant_a.configuration_id,
        "refused installs change nothing"
    );

    let listed = store
        .list_accounts(a, false, &PageQuery::first(0))
        .await
        .expect("list accounts");
    assert!(listed.items.iter().any(|x| x.zoom_account_id == account_id));
    let listed = store
        .list_accounts(b, true, &PageQuery::first(0))
        .await
        .expect("list accounts");
    assert!(
        listed.items.iter().all(|x| x.zoom_account_id != account_id),
        "accounts are listed only in their institution"
    );

    assert_class(
        store
            .uninstall_account(AccountUninstall {
                institution_id: Some(b.to_string()),
                zoom_account_id: account_id.to_string(),
                now: at(8),
            })
            .await,
        ErrorClass::NotFound,
        "uninstall through another institution",
    );
    assert!(
        store
            .installed_account(&account_id)
            .await
            .expect("installed")
            .is_some(),
        "a refused uninstall leaves the account installed"
    );
    let uninstalled = store
        .uninstall_account(AccountUninstall {
            institution_id: Some(a.to_string()),
            zoom_account_id: account_id.to_string(),
            now: at(10),
        })
        .await
        .expect("uninstall");
    assert_eq!(uninstalled.uninstalled_at, Some(at(10)));
    assert_eq!(
        store
            .installed_account(&account_id)
            .await
            .expect("installed"),
        None,
        "an uninstalled account is not installed"
    );
    let again = store
        .uninstall_account(AccountUninstall {
            institution_id: Some(a.to_string()),
            zoom_account_id: account_id.to_string(),
            now: at(11),
        })
        .await
        .expect("uninstalling twice is not an error");
    assert!(!again.is_installed());
    let listed = store
        .list_accounts(a, false, &PageQuery::first(0))
        .await
        .expect("list accounts");
    assert!(
        listed.items.iter().all(|x| x.zoom_account_id != account_id),
        "uninstalled accounts are left out unless asked for"
    );
    let listed = store
        .list_accounts(a, true, &PageQuery::first(0))
        .await
        .expect("list accounts");
    assert!(listed.items.iter().any(|x| x.zoom_account_id == account_id));

    let moved = store
        .install_account(install(
            &tenant_b.configuration_id,
            ZoomPlan::Enterprise,
            None,
            at(20),
        ))
        .await
        .expect("another institution may install an uninstalled account");
    assert_eq!(moved.institution_id, *b);
    assert_eq!(moved.configuration_id, tenant_b.configuration_id);
    assert_eq!(
        moved.installed_at,
        at(20),
        "a new binding has a new installed_at"
    );
    assert_eq!(moved.uninstalled_at, None);
    assert_eq!(
        moved.oauth, None,
        "credentials of the previous institution are not inherited"
    );
    assert_class(
        store.get_account(a, &account_id).await,
        ErrorClass::NotFound,
        "the previous institution no longer sees the account",
    );
    let deauthorized = store
        .uninstall_account(AccountUninstall {
            institution_id: None,
            zoom_account_id: account_id.to_string(),
            now: at(30),
        })
        .await
        .expect("uninstall without an institution");
    assert_eq!(deauthorized.uninstalled_at, Some(at(30)));
    assert_class(
        store
            .uninstall_account(AccountUninstall {
                institution_id: None,
                zoom_account_id: "zacct_conformance_missing".to_string(),
                now: at(30),
            })
            .await,
        ErrorClass::NotFound,
        "uninstall an unknown account",
    );
}
