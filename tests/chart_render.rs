//! The Helm chart as a cluster admin meets it: linted and rendered by the real Helm library with
//! the default values and with each documented option, every rendered object valid for
//! Kubernetes 1.34 (kubernetes-validate, strict), bad values refused with a message naming them,
//! the CRDs identical to the generated ones, and the Deployment's settings ones the operator
//! binary actually reads.

use jobqueue_test_support::helm;

use std::process::Command;

use helm::{NAMESPACE, Rendered};
use serde_json::{Value, json};

const FULLNAME: &str = "jq-jobqueue-operator";

#[test]
fn chart_crds_are_the_generated_crds() {
    let top = helm::files_in(&helm::root().join("crds"));
    let chart = helm::files_in(&helm::chart_dir().join("crds"));
    let names = |v: &[std::path::PathBuf]| -> Vec<String> {
        v.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let fix = "run `cp crds/*.yaml charts/jobqueue-operator/crds/`";
    assert_eq!(
        names(&top),
        names(&chart),
        "the chart's crds/ must hold the same files as crds/: {fix}"
    );
    for (a, b) in top.iter().zip(&chart) {
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{} differs from {}: {fix}",
            b.display(),
            a.display()
        );
    }
}

/// A documented option: its name, the values that set it, and what it must change.
type Case = (&'static str, Value, fn(&Rendered));

fn options() -> Vec<Case> {
    vec![
        ("defaults", json!({}), check_defaults),
        (
            "watchNamespaces",
            json!({"watchNamespaces": ["team-a", "team-b"]}),
            check_watch_namespaces,
        ),
        (
            "redis.existingSecret",
            json!({"redis": {"existingSecret": "redis-default", "existingSecretKey": "uri"}}),
            |r| {
                assert_eq!(
                    r.env("REDIS_URL").unwrap()["valueFrom"]["secretKeyRef"],
                    json!({"name": "redis-default", "key": "uri"})
                );
                assert!(
                    r.notes
                        .contains("Secret jobqueue-system/redis-default (key uri)")
                );
            },
        ),
        (
            "redis.url",
            json!({"redis": {"url": "redis://redis.data.svc:6379/0"}}),
            |r| {
                assert_eq!(
                    r.env("REDIS_URL").unwrap()["value"],
                    "redis://redis.data.svc:6379/0"
                );
            },
        ),
        (
            "redis.perQueueUsers",
            json!({"redis": {"perQueueUsers": "required"}}),
            |r| assert_eq!(r.env("PER_QUEUE_USERS").unwrap()["value"], "required"),
        ),
        (
            "networkPolicy",
            json!({"networkPolicy": {"enabled": true, "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ]}}),
            check_network_policy,
        ),
        (
            "metrics.serviceMonitor",
            json!({"metrics": {"serviceMonitor": {"enabled": true, "interval": "15s",
                                                   "labels": {"release": "prom"}}}}),
            check_service_monitor,
        ),
        (
            "podDisruptionBudget",
            json!({"podDisruptionBudget": {"enabled": true}}),
            |r| {
                let pdb = r.get("PodDisruptionBudget", FULLNAME);
                assert_eq!(pdb["spec"]["minAvailable"], 1);
                assert_selects_operator_pods(r, &pdb["spec"]["selector"]["matchLabels"]);
            },
        ),
        (
            "podDisruptionBudget.maxUnavailable",
            json!({"podDisruptionBudget": {"enabled": true, "maxUnavailable": "50%"}}),
            |r| {
                let spec = &r.get("PodDisruptionBudget", FULLNAME)["spec"];
                assert_eq!(spec["maxUnavailable"], "50%");
                assert!(spec.get("minAvailable").is_none(), "{spec}");
            },
        ),
        (
            "serviceAccount (existing)",
            json!({"serviceAccount": {"create": false, "name": "platform-operator"}}),
            |r| {
                assert_eq!(r.of_kind("ServiceAccount").count(), 0);
                assert_eq!(
                    r.deployment()["spec"]["template"]["spec"]["serviceAccountName"],
                    "platform-operator"
                );
                for b in r
                    .of_kind("ClusterRoleBinding")
                    .chain(r.of_kind("RoleBinding"))
                {
                    assert_eq!(b["subjects"][0]["name"], "platform-operator", "{b}");
                }
            },
        ),
        (
            "rbac.create=false",
            json!({"rbac": {"create": false}}),
            |r| {
                for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
                    assert_eq!(r.of_kind(kind).count(), 0, "{kind}: {:#?}", r.names());
                }
            },
        ),
        (
            "rbac.scaleTargets",
            json!({"rbac": {"scaleTargets": [{"apiGroups": ["argoproj.io"],
                                               "resources": ["rollouts/scale"]}]}}),
            |r| {
                let rules = &r.get("ClusterRole", FULLNAME)["rules"];
                assert!(
                    rules.as_array().unwrap().iter().any(|rule| rule
                        == &json!({"apiGroups": ["argoproj.io"], "resources": ["rollouts/scale"],
                                   "verbs": ["get", "patch"]})),
                    "{rules:#}"
                );
            },
        ),
        (
            "rbac.aggregateToDefaultRoles=false",
            json!({"rbac": {"aggregateToDefaultRoles": false}}),
            |r| {
                let roles: Vec<_> = r.of_kind("ClusterRole").collect();
                assert_eq!(roles.len(), 1, "{:#?}", r.names());
            },
        ),
        (
            "metrics.service.enabled=false",
            json!({"metrics": {"service": {"enabled": false}, "port": 9090}}),
            |r| {
                assert_eq!(r.of_kind("Service").count(), 0);
                assert_eq!(r.env("METRICS_ADDR").unwrap()["value"], "0.0.0.0:9090");
                assert_eq!(r.container()["ports"][0]["containerPort"], 9090);
            },
        ),
        (
            "fullnameOverride and leaderElection",
            json!({"fullnameOverride": "queues", "leaderElection": {"leaseName": "queues-leader",
                                                                     "leaseDuration": "30s"}}),
            |r| {
                r.get("Deployment", "queues");
                r.get("ClusterRole", "queues");
                assert_eq!(r.env("LEASE_NAME").unwrap()["value"], "queues-leader");
                assert_eq!(r.env("LEASE_DURATION").unwrap()["value"], "30s");
            },
        ),
        (
            "pod placement and extras",
            kitchen_sink(),
            check_kitchen_sink,
        ),
        (
            "dashboard",
            json!({"dashboard": {"enabled": true}}),
            check_dashboard,
        ),
        (
            "dashboard.actions",
            json!({"dashboard": {"enabled": true, "actions": {"enabled": true}}}),
            |r| check_dashboard_token(r, &format!("{FULLNAME}-dashboard-token"), "token", true),
        ),
        (
            "dashboard.actions.existingSecret",
            json!({"dashboard": {"enabled": true, "port": 9000,
                                 "actions": {"enabled": true, "existingSecret": "dash",
                                             "existingSecretKey": "bearer"}}}),
            |r| {
                check_dashboard_token(r, "dash", "bearer", false);
                assert_eq!(r.env("DASHBOARD_ADDR").unwrap()["value"], "0.0.0.0:9000");
            },
        ),
    ]
}

/// The dashboard on its own port and Service, read-only, with how to open it in the notes.
fn check_dashboard(r: &Rendered) {
    assert_eq!(r.env("DASHBOARD_ADDR").unwrap()["value"], "0.0.0.0:8081");
    assert!(r.env("DASHBOARD_ACTIONS").is_none());
    assert!(r.env("DASHBOARD_TOKEN_FILE").is_none());
    let ports = r.container()["ports"].as_array().unwrap();
    assert!(
        ports.contains(&json!({"name": "dashboard", "containerPort": 8081, "protocol": "TCP"})),
        "{ports:#?}"
    );
    let svc = r.get("Service", &format!("{FULLNAME}-dashboard"));
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "dashboard");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8081);
    assert_selects_operator_pods(r, &svc["spec"]["selector"]);
    assert_eq!(r.of_kind("Secret").count(), 0, "no token while read-only");
    assert!(r.notes.contains("port-forward pod/"), "{}", r.notes);
    assert!(r.notes.contains("read-only"), "{}", r.notes);
}

/// Actions on: the token Secret (`created` by the chart or not) is mounted where
/// DASHBOARD_TOKEN_FILE points.
fn check_dashboard_token(r: &Rendered, secret: &str, key: &str, created: bool) {
    assert_eq!(r.env("DASHBOARD_ACTIONS").unwrap()["value"], "true");
    let file = r.env("DASHBOARD_TOKEN_FILE").unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    let pod = &r.deployment()["spec"]["template"]["spec"];
    let volume = &pod["volumes"][0];
    assert_eq!(volume["secret"]["secretName"], secret, "{volume}");
    assert_eq!(volume["secret"]["items"][0]["key"], key);
    let mount = &r.container()["volumeMounts"][0];
    assert_eq!(mount["name"], volume["name"]);
    assert_eq!(mount["readOnly"], true);
    let path = volume["secret"]["items"][0]["path"].as_str().unwrap();
    assert_eq!(
        file,
        format!("{}/{path}", mount["mountPath"].as_str().unwrap())
    );
    if created {
        let s = r.get("Secret", secret);
        let token = s["data"][key].as_str().expect("a token");
        assert!(token.len() >= 48, "a long random token: {token}");
        assert_eq!(
            s["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    } else {
        assert_eq!(r.of_kind("Secret").count(), 0, "the named Secret is used");
    }
    assert!(
        r.notes.contains(&format!("get secret {secret}")),
        "{}",
        r.notes
    );
}

fn kitchen_sink() -> Value {
    json!({
        "replicaCount": 3,
        "image": {"repository": "registry.example/jq", "tag": "v9", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "podAnnotations": {"example.com/team": "platform"},
        "podLabels": {"tier": "control"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "jobqueue-operator"}}}}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "jobqueue-operator"}}}],
        "priorityClassName": "system-cluster-critical",
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": null, "memory": "128Mi"}},
        "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
        "logLevel": "info,jobqueue_operator=debug",
        "logFormat": "text",
        "defaultPollInterval": "2s", "statusInterval": "30s", "janitorInterval": "500ms",
        "quietReadInterval": "2m",
    })
}

fn check_kitchen_sink(r: &Rendered) {
    let d = r.deployment();
    let pod = &d["spec"]["template"];
    let c = r.container();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(c["image"], "registry.example/jq:v9");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "regcred"}])
    );
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    assert_eq!(pod["metadata"]["labels"]["tier"], "control");
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
    assert!(pod["spec"]["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(pod["spec"]["topologySpreadConstraints"][0]["maxSkew"], 1);
    assert_eq!(pod["spec"]["priorityClassName"], "system-cluster-critical");
    assert_eq!(c["resources"]["limits"], json!({"memory": "128Mi"}));
    for (name, value) in [
        ("RUST_BACKTRACE", "1"),
        ("RUST_LOG", "info,jobqueue_operator=debug"),
        ("LOG_FORMAT", "text"),
        ("DEFAULT_POLL_INTERVAL", "2s"),
        ("STATUS_INTERVAL", "30s"),
        ("JANITOR_INTERVAL", "500ms"),
        ("QUIET_READ_INTERVAL", "2m"),
    ] {
        assert_eq!(r.env(name).unwrap()["value"], value, "{name}");
    }
}

fn assert_selects_operator_pods(r: &Rendered, selector: &Value) {
    let pod_labels = &r.deployment()["spec"]["template"]["metadata"]["labels"];
    let selector = selector.as_object().expect("matchLabels");
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(
            &pod_labels[k], v,
            "selector {k}={v} does not match the operator pods"
        );
    }
}

fn check_defaults(r: &Rendered) {
    let d = r.deployment();
    assert_eq!(d["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        d["spec"]["replicas"], 2,
        "two replicas: a leader and a standby"
    );
    let pod = &d["spec"]["template"]["spec"];
    let c = r.container();
    assert_eq!(c["args"], json!(["run"]));

    // Hardened: non-root, read-only root, no capabilities, seccomp.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][res].is_string(),
                "resources.{kind}.{res}"
            );
        }
    }

    // Probes hit the operator's health endpoints on its metrics port.
    let port = &c["ports"][0];
    assert_eq!(port["name"], "metrics");
    assert_eq!(port["containerPort"], 8080);
    assert_eq!(r.env("METRICS_ADDR").unwrap()["value"], "0.0.0.0:8080");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");

    // Leader election identity and namespace from the downward API.
    assert_eq!(
        r.env("POD_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        r.env("POD_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(r.env("LEASE_NAME").unwrap()["value"], FULLNAME);
    assert!(
        r.env("REDIS_URL").is_none(),
        "no default Redis unless asked"
    );
    assert!(r.env("WATCH_NAMESPACES").is_none(), "all namespaces");
    assert!(r.notes.contains("every JobQueue must set spec.redis"));
    assert!(
        r.notes.contains("kubectl apply"),
        "NOTES say what to apply next"
    );

    // All namespaces: a ClusterRole bound to the ServiceAccount; the Lease Role at home.
    let sa = r.get("ServiceAccount", FULLNAME);
    assert_eq!(sa["metadata"]["namespace"], NAMESPACE);
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    let binding = r.get("ClusterRoleBinding", FULLNAME);
    assert_eq!(binding["roleRef"]["name"], FULLNAME);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}])
    );
    let lease_role = r.get("Role", &format!("{FULLNAME}-leader-election"));
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(lease_role["rules"][0]["resources"], json!(["leases"]));
    // Reading and renewing: only the operator's own Lease.
    assert_eq!(lease_role["rules"][0]["resourceNames"], json!([FULLNAME]));
    assert_eq!(lease_role["rules"][0]["verbs"], json!(["get", "patch"]));
    assert_eq!(r.of_kind("PodDisruptionBudget").count(), 0);
    assert_eq!(r.of_kind("NetworkPolicy").count(), 0);
    assert_eq!(r.of_kind("ServiceMonitor").count(), 0);

    let svc = r.get("Service", &format!("{FULLNAME}-metrics"));
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_selects_operator_pods(r, &svc["spec"]["selector"]);
}

fn check_watch_namespaces(r: &Rendered) {
    assert_eq!(r.env("WATCH_NAMESPACES").unwrap()["value"], "team-a,team-b");
    assert_eq!(
        r.of_kind("ClusterRoleBinding").count(),
        0,
        "no cluster-wide grant"
    );
    // Only the aggregated roles for people remain cluster-scoped, and nothing binds them to us.
    for role in r.of_kind("ClusterRole") {
        let name = role["metadata"]["name"].as_str().unwrap();
        assert!(name.ends_with("-view") || name.ends_with("-edit"), "{name}");
    }
    for ns in ["team-a", "team-b"] {
        let role = r
            .of_kind("Role")
            .find(|o| o["metadata"]["namespace"] == ns && o["metadata"]["name"] == FULLNAME)
            .unwrap_or_else(|| panic!("no Role in {ns}: {:#?}", r.names()));
        assert!(role["rules"].as_array().unwrap().len() > 3);
        let binding = r
            .of_kind("RoleBinding")
            .find(|o| o["metadata"]["namespace"] == ns && o["metadata"]["name"] == FULLNAME)
            .unwrap_or_else(|| panic!("no RoleBinding in {ns}"));
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }
    r.get("Role", &format!("{FULLNAME}-leader-election"));
    assert!(r.notes.contains("team-a, team-b"));
}

fn check_network_policy(r: &Rendered) {
    let np = r.get("NetworkPolicy", FULLNAME);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    let deployment = r.get("Deployment", FULLNAME);
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in np["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &pod_labels[k], v,
            "the policy must select the operator pods"
        );
    }
    let rules = np["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(rules.len(), 1, "metrics only: the dashboard is off");
    assert_eq!(
        rules[0]["ports"],
        json!([{"port": "metrics", "protocol": "TCP"}])
    );
    assert_eq!(
        rules[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
}

fn check_service_monitor(r: &Rendered) {
    let sm = r.get("ServiceMonitor", FULLNAME);
    let svc = r.get("Service", &format!("{FULLNAME}-metrics"));
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], svc["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["interval"], "15s");
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"],
        json!([NAMESPACE])
    );
    let svc_labels = &svc["metadata"]["labels"];
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc_labels[k], v,
            "the ServiceMonitor must select the Service"
        );
    }
}

#[test]
fn chart_lints_clean_and_renders_valid_objects_with_each_option() {
    let options = options();
    let values: Vec<Value> = options.iter().map(|(_, v, _)| v.clone()).collect();
    let answer = helm::run(true, &values);

    let lint = answer.lint.expect("lint report");
    assert_eq!(lint["errors"], json!([]), "{lint:#}");
    let serious: Vec<_> = lint["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["severity"].as_u64().unwrap_or(3) >= 2)
        .collect();
    assert!(serious.is_empty(), "helm lint --strict: {serious:#?}");
    assert!(answer.crds.is_empty(), "CRDs: {:#?}", answer.crds);

    for ((name, _, check), case) in options.iter().zip(&answer.cases) {
        if let Some(e) = &case.error {
            panic!("{name}: the chart refused the values: {e}");
        }
        assert!(
            case.problems.is_empty(),
            "{name}: invalid objects for Kubernetes {}: {:#?}",
            helm::KUBERNETES,
            case.problems
        );
        // kubernetes-validate knows built-in kinds only; the ServiceMonitor is checked by hand.
        for kind in &case.unvalidated {
            assert!(
                kind.starts_with("ServiceMonitor/"),
                "{name}: {kind} was not validated"
            );
        }
        assert!(!case.objects.is_empty(), "{name}");
        check(case);
    }
}

#[test]
fn bad_values_are_refused_with_a_message_naming_them() {
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({"replicaCount": 0}), &["/replicaCount", "minimum"]),
        (
            json!({"image": {"pullPolicy": "Sometimes"}}),
            &["/image/pullPolicy", "IfNotPresent"],
        ),
        (
            json!({"watchNamespaces": ["Team_A"]}),
            &["/watchNamespaces/0", "Team_A"],
        ),
        (
            json!({"janitorInterval": "5 seconds"}),
            &["/janitorInterval", "5 seconds"],
        ),
        (json!({"logFormat": "xml"}), &["/logFormat", "json", "text"]),
        (
            json!({"redis": {"perQueueUsers": "always"}}),
            &["/redis/perQueueUsers", "required"],
        ),
        (
            json!({"redis": {"url": "http://redis:6379"}}),
            &["/redis/url", "http://redis:6379"],
        ),
        (json!({"replicaCont": 3}), &["replicaCont", "not allowed"]),
        (
            json!({"redis": {"url": "redis://r:6379", "existingSecret": "r"}}),
            &["redis.url and redis.existingSecret"],
        ),
        (
            json!({"replicaCount": 1, "podDisruptionBudget": {"enabled": true}}),
            &["podDisruptionBudget.minAvailable (1)", "replicaCount (1)"],
        ),
        (
            json!({"metrics": {"service": {"enabled": false},
                               "serviceMonitor": {"enabled": true}}}),
            &["metrics.serviceMonitor.enabled", "metrics.service.enabled"],
        ),
        (
            json!({"dashboard": {"enabled": true, "port": 8080}}),
            &["dashboard.port (8080)", "metrics.port (8080)"],
        ),
        (
            json!({"dashboard": {"actions": {"enabled": true}}}),
            &["dashboard.actions.enabled needs dashboard.enabled"],
        ),
        (
            json!({"dashboard": {"enabled": true, "port": 0}}),
            &["/dashboard/port", "minimum"],
        ),
    ];
    let values: Vec<Value> = cases.iter().map(|(v, _)| v.clone()).collect();
    let answer = helm::run(false, &values);
    for ((values, wanted), case) in cases.iter().zip(&answer.cases) {
        let error = case
            .error
            .as_deref()
            .unwrap_or_else(|| panic!("{values} was accepted"));
        for w in *wanted {
            assert!(
                error.contains(w),
                "{values}: {error:?} should mention {w:?}"
            );
        }
    }
}

#[test]
fn every_setting_the_chart_passes_is_one_the_operator_reads() {
    let out = Command::new(env!("CARGO_BIN_EXE_jobqueue-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run the operator binary");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let r = helm::render(json!({
        "watchNamespaces": ["a"],
        "redis": {"url": "redis://r:6379"},
        "dashboard": {"enabled": true, "actions": {"enabled": true}},
    }));
    let env = r.container()["env"].as_array().unwrap();
    assert!(env.len() >= 10, "{env:#?}");
    for var in env {
        let name = var["name"].as_str().unwrap();
        assert!(
            help.contains(&format!("[env: {name}")),
            "the chart sets {name}, which `jobqueue-operator run` does not read:\n{help}"
        );
    }
    for format in ["json", "text"] {
        assert!(help.contains(format), "log format {format}");
    }
}

#[test]
fn image_runs_the_operator_binary_as_a_numeric_non_root_user() {
    let dockerfile = std::fs::read_to_string(helm::root().join("Dockerfile")).unwrap();
    let last_stage = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, s)| s)
        .expect("a multi-stage Dockerfile");
    let stages = format!("\n{dockerfile}").matches("\nFROM ").count();
    assert!(stages >= 2, "a builder stage and a small final stage");
    // runAsNonRoot can only be verified for a numeric user.
    let user = last_stage
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the final stage sets USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("a numeric USER");
    assert_ne!(uid, 0, "the image must not run as root");
    let defaults = helm::render(json!({}));
    assert_eq!(
        defaults.deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        uid,
        "the chart's runAsUser and the image's USER should agree"
    );
    // The chart passes only `run`: the entrypoint must be the binary itself.
    let entrypoint = last_stage
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("exec-form ENTRYPOINT");
    assert_eq!(entrypoint.len(), 1, "{entrypoint:?}");
    assert!(entrypoint[0].ends_with("/jobqueue-operator"));
    assert!(
        last_stage.contains(&format!(" {}", entrypoint[0])),
        "the final stage copies the binary to {}",
        entrypoint[0]
    );
    let ignore = std::fs::read_to_string(helm::root().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim_matches('/') == "target"),
        ".dockerignore keeps target/ out of the build context"
    );
}

#[test]
fn chart_readme_documents_every_value() {
    let chart = helm::chart_dir();
    let readme = std::fs::read_to_string(chart.join("README.md")).unwrap();
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    // A value is documented when its key path (or that of a map holding it) is in the README.
    fn walk(path: &str, value: &serde_yaml::Value, readme: &str, missing: &mut Vec<String>) {
        if readme.contains(&format!("`{path}`")) {
            return;
        }
        match value {
            serde_yaml::Value::Mapping(m) if !m.is_empty() => {
                for (k, v) in m {
                    let k = k.as_str().expect("string keys");
                    walk(&format!("{path}.{k}"), v, readme, missing);
                }
            }
            _ => missing.push(path.to_string()),
        }
    }
    let mut missing = Vec::new();
    for (k, v) in values.as_mapping().expect("values.yaml is a map") {
        walk(k.as_str().unwrap(), v, &readme, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "values not documented in charts/jobqueue-operator/README.md: {missing:?}"
    );
}

#[test]
fn chart_app_version_is_the_crate_version() {
    // The default image tag is the chart's appVersion: it must name this release of the binary.
    let chart: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(helm::chart_dir().join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "set appVersion in charts/jobqueue-operator/Chart.yaml to the crate version"
    );
}
