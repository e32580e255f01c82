//! Objects built with k8s-pb's typed structs, encoded and read back through [`decode`], give
//! the JSON k8s-openapi serialises for the same objects.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use k8s_pb::api::apps::v1 as pb_apps;
use k8s_pb::api::batch::v1 as pb_batch;
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity as PbQuantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString as PbIntOrString;
use prost::Message;
use serde::Serialize;

use super::decode;

const SECONDS: i64 = 1_700_000_000;

/// Asserts that `pb`, sent as a protobuf body, reads as `openapi`'s JSON.
fn assert_reads_as<P: Message + k8s_pb::Resource, O: Serialize>(pb: &P, openapi: &O) {
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(P::API_VERSION.into()),
            kind: Some(P::KIND.into()),
        }),
        raw: Some(pb.encode_to_vec()),
        ..Default::default()
    };
    let body = [b"k8s\0".as_slice(), &envelope.encode_to_vec()].concat();
    let decoded = decode(&body).unwrap();
    assert_eq!(
        decoded,
        serde_json::to_value(openapi).unwrap(),
        "{}",
        P::KIND
    );
}

fn s(v: &str) -> Option<String> {
    Some(v.into())
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app".into(), "web".into())])
}

fn pb_meta(name: &str) -> Option<pb_meta::ObjectMeta> {
    Some(pb_meta::ObjectMeta {
        name: s(name),
        namespace: s("default"),
        labels: labels(),
        creation_timestamp: Some(pb_time()),
        ..Default::default()
    })
}

fn openapi_meta(name: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        namespace: s("default"),
        labels: Some(labels()),
        creation_timestamp: Some(openapi_time()),
        ..Default::default()
    }
}

fn pb_time() -> pb_meta::Time {
    pb_meta::Time {
        seconds: Some(SECONDS),
        nanos: Some(0),
    }
}

fn openapi_time() -> meta::Time {
    meta::Time(Timestamp::from_second(SECONDS).unwrap())
}

fn pb_int(n: i32) -> Option<PbIntOrString> {
    Some(PbIntOrString {
        r#type: Some(0),
        int_val: Some(n),
        str_val: None,
    })
}

fn pb_str(v: &str) -> Option<PbIntOrString> {
    Some(PbIntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: s(v),
    })
}

/// A container with a port, a CPU limit, a probe on a named port and an env var.
fn pb_container() -> pb_core::Container {
    pb_core::Container {
        name: s("web"),
        image: s("nginx"),
        command: vec!["nginx".into(), "-g".into()],
        ports: vec![pb_core::ContainerPort {
            container_port: Some(80),
            host_ip: s("127.0.0.1"),
            protocol: s("TCP"),
            ..Default::default()
        }],
        env: vec![pb_core::EnvVar {
            name: s("MODE"),
            value: s("prod"),
            ..Default::default()
        }],
        resources: Some(pb_core::ResourceRequirements {
            limits: BTreeMap::from([("cpu".into(), PbQuantity { string: s("500m") })]),
            ..Default::default()
        }),
        liveness_probe: Some(pb_core::Probe {
            handler: Some(pb_core::ProbeHandler {
                http_get: Some(pb_core::HttpGetAction {
                    path: s("/healthz"),
                    port: pb_str("http"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(10),
            ..Default::default()
        }),
        volume_mounts: vec![pb_core::VolumeMount {
            name: s("scratch"),
            mount_path: s("/scratch"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn openapi_container() -> core::Container {
    core::Container {
        name: "web".into(),
        image: s("nginx"),
        command: Some(vec!["nginx".into(), "-g".into()]),
        ports: Some(vec![core::ContainerPort {
            container_port: 80,
            host_ip: s("127.0.0.1"),
            protocol: s("TCP"),
            ..Default::default()
        }]),
        env: Some(vec![core::EnvVar {
            name: "MODE".into(),
            value: s("prod"),
            ..Default::default()
        }]),
        resources: Some(core::ResourceRequirements {
            limits: Some(BTreeMap::from([("cpu".into(), Quantity("500m".into()))])),
            ..Default::default()
        }),
        liveness_probe: Some(core::Probe {
            http_get: Some(core::HTTPGetAction {
                path: s("/healthz"),
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            period_seconds: Some(10),
            ..Default::default()
        }),
        volume_mounts: Some(vec![core::VolumeMount {
            name: "scratch".into(),
            mount_path: "/scratch".into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn pb_pod_spec(restart_policy: &str) -> pb_core::PodSpec {
    pb_core::PodSpec {
        containers: vec![pb_container()],
        restart_policy: s(restart_policy),
        host_pid: Some(true),
        volumes: vec![pb_core::Volume {
            name: s("scratch"),
            volume_source: Some(pb_core::VolumeSource {
                empty_dir: Some(pb_core::EmptyDirVolumeSource::default()),
                ..Default::default()
            }),
        }],
        ..Default::default()
    }
}

fn openapi_pod_spec(restart_policy: &str) -> core::PodSpec {
    core::PodSpec {
        containers: vec![openapi_container()],
        restart_policy: s(restart_policy),
        host_pid: Some(true),
        volumes: Some(vec![core::Volume {
            name: "scratch".into(),
            empty_dir: Some(core::EmptyDirVolumeSource::default()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn pb_template(restart_policy: &str) -> Option<pb_core::PodTemplateSpec> {
    Some(pb_core::PodTemplateSpec {
        metadata: Some(pb_meta::ObjectMeta {
            labels: labels(),
            ..Default::default()
        }),
        spec: Some(pb_pod_spec(restart_policy)),
    })
}

fn openapi_template(restart_policy: &str) -> core::PodTemplateSpec {
    core::PodTemplateSpec {
        metadata: Some(meta::ObjectMeta {
            labels: Some(labels()),
            ..Default::default()
        }),
        spec: Some(openapi_pod_spec(restart_policy)),
    }
}

#[test]
fn a_deployment_reads_as_k8s_openapi_writes_it() {
    let pb = pb_apps::Deployment {
        metadata: pb_meta("web"),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(pb_meta::LabelSelector {
                match_labels: labels(),
                ..Default::default()
            }),
            template: pb_template("Always"),
            strategy: Some(pb_apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(pb_apps::RollingUpdateDeployment {
                    max_unavailable: pb_int(1),
                    max_surge: pb_str("25%"),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let openapi = apps::Deployment {
        metadata: openapi_meta("web"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: meta::LabelSelector {
                match_labels: Some(labels()),
                ..Default::default()
            },
            template: openapi_template("Always"),
            strategy: Some(apps::DeploymentStrategy {
                type_: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(1)),
                    max_surge: Some(IntOrString::String("25%".into())),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    assert_reads_as(&pb, &openapi);
}

fn pb_job_spec() -> pb_batch::JobSpec {
    pb_batch::JobSpec {
        backoff_limit: Some(2),
        completions: Some(1),
        parallelism: Some(1),
        ttl_seconds_after_finished: Some(60),
        template: pb_template("Never"),
        ..Default::default()
    }
}

fn openapi_job_spec() -> batch::JobSpec {
    batch::JobSpec {
        backoff_limit: Some(2),
        completions: Some(1),
        parallelism: Some(1),
        ttl_seconds_after_finished: Some(60),
        template: openapi_template("Never"),
        ..Default::default()
    }
}

#[test]
fn a_job_and_a_cronjob_read_as_k8s_openapi_writes_them() {
    let pb = pb_batch::Job {
        metadata: pb_meta("once"),
        spec: Some(pb_job_spec()),
        status: None,
    };
    let openapi = batch::Job {
        metadata: openapi_meta("once"),
        spec: Some(openapi_job_spec()),
        status: None,
    };
    assert_reads_as(&pb, &openapi);

    let pb = pb_batch::CronJob {
        metadata: pb_meta("nightly"),
        spec: Some(pb_batch::CronJobSpec {
            schedule: s("*/5 * * * *"),
            time_zone: s("Etc/UTC"),
            concurrency_policy: s("Forbid"),
            successful_jobs_history_limit: Some(3),
            job_template: Some(pb_batch::JobTemplateSpec {
                metadata: None,
                spec: Some(pb_job_spec()),
            }),
            ..Default::default()
        }),
        status: Some(pb_batch::CronJobStatus {
            last_schedule_time: Some(pb_time()),
            ..Default::default()
        }),
    };
    let openapi = batch::CronJob {
        metadata: openapi_meta("nightly"),
        spec: Some(batch::CronJobSpec {
            schedule: "*/5 * * * *".into(),
            time_zone: s("Etc/UTC"),
            concurrency_policy: s("Forbid"),
            successful_jobs_history_limit: Some(3),
            job_template: batch::JobTemplateSpec {
                metadata: None,
                spec: Some(openapi_job_spec()),
            },
            ..Default::default()
        }),
        status: Some(batch::CronJobStatus {
            last_schedule_time: Some(openapi_time()),
            ..Default::default()
        }),
    };
    assert_reads_as(&pb, &openapi);
}

#[test]
fn a_service_reads_as_k8s_openapi_writes_it() {
    let pb = pb_core::Service {
        metadata: pb_meta("web"),
        spec: Some(pb_core::ServiceSpec {
            selector: labels(),
            ports: vec![pb_core::ServicePort {
                name: s("http"),
                protocol: s("TCP"),
                port: Some(80),
                target_port: pb_int(8080),
                ..Default::default()
            }],
            r#type: s("ClusterIP"),
            cluster_ip: s("10.0.0.10"),
            cluster_ips: vec!["10.0.0.10".into()],
            external_ips: vec!["192.0.2.1".into()],
            session_affinity: s("ClientIP"),
            session_affinity_config: Some(pb_core::SessionAffinityConfig {
                client_ip: Some(pb_core::ClientIpConfig {
                    timeout_seconds: Some(300),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let openapi = core::Service {
        metadata: openapi_meta("web"),
        spec: Some(core::ServiceSpec {
            selector: Some(labels()),
            ports: Some(vec![core::ServicePort {
                name: s("http"),
                protocol: s("TCP"),
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            type_: s("ClusterIP"),
            cluster_ip: s("10.0.0.10"),
            cluster_ips: Some(vec!["10.0.0.10".into()]),
            external_ips: Some(vec!["192.0.2.1".into()]),
            session_affinity: s("ClientIP"),
            session_affinity_config: Some(core::SessionAffinityConfig {
                client_ip: Some(core::ClientIPConfig {
                    timeout_seconds: Some(300),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    assert_reads_as(&pb, &openapi);
}

// Stays whole: the two builds of the same Pod read best side by side.
#[test]
fn a_pod_with_its_ips_in_status_reads_as_k8s_openapi_writes_it() {
    let pb = pb_core::Pod {
        metadata: pb_meta("web-0"),
        spec: Some(pb_core::PodSpec {
            node_name: s("node-a"),
            ..pb_pod_spec("Always")
        }),
        status: Some(pb_core::PodStatus {
            phase: s("Running"),
            host_ip: s("192.0.2.7"),
            host_ips: vec![pb_core::HostIp { ip: s("192.0.2.7") }],
            pod_ip: s("10.1.0.5"),
            pod_ips: vec![pb_core::PodIp { ip: s("10.1.0.5") }],
            start_time: Some(pb_time()),
            conditions: vec![pb_core::PodCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_transition_time: Some(pb_time()),
                ..Default::default()
            }],
            container_statuses: vec![pb_core::ContainerStatus {
                name: s("web"),
                ready: Some(true),
                restart_count: Some(1),
                image: s("nginx"),
                image_id: s("docker.io/library/nginx@sha256:0"),
                container_id: s("containerd://0"),
                state: Some(pb_core::ContainerState {
                    running: Some(pb_core::ContainerStateRunning {
                        started_at: Some(pb_time()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let openapi = core::Pod {
        metadata: openapi_meta("web-0"),
        spec: Some(core::PodSpec {
            node_name: s("node-a"),
            ..openapi_pod_spec("Always")
        }),
        status: Some(core::PodStatus {
            phase: s("Running"),
            host_ip: s("192.0.2.7"),
            host_ips: Some(vec![core::HostIP {
                ip: "192.0.2.7".into(),
            }]),
            pod_ip: s("10.1.0.5"),
            pod_ips: Some(vec![core::PodIP {
                ip: "10.1.0.5".into(),
            }]),
            start_time: Some(openapi_time()),
            conditions: Some(vec![core::PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(openapi_time()),
                ..Default::default()
            }]),
            container_statuses: Some(vec![core::ContainerStatus {
                name: "web".into(),
                ready: true,
                restart_count: 1,
                image: "nginx".into(),
                image_id: "docker.io/library/nginx@sha256:0".into(),
                container_id: s("containerd://0"),
                state: Some(core::ContainerState {
                    running: Some(core::ContainerStateRunning {
                        started_at: Some(openapi_time()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    };
    assert_reads_as(&pb, &openapi);
}

#[test]
fn a_secret_and_a_configmap_read_as_k8s_openapi_writes_them() {
    let url = b"redis://x:6379".to_vec();
    let pb = pb_core::Secret {
        metadata: pb_meta("redis"),
        immutable: Some(true),
        data: BTreeMap::from([("url".into(), url.clone())]),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
    };
    let openapi = core::Secret {
        metadata: openapi_meta("redis"),
        immutable: Some(true),
        data: Some(BTreeMap::from([("url".into(), ByteString(url.clone()))])),
        type_: s("Opaque"),
        ..Default::default()
    };
    assert_reads_as(&pb, &openapi);

    let pb = pb_core::ConfigMap {
        metadata: pb_meta("settings"),
        immutable: None,
        data: BTreeMap::from([("mode".into(), "prod".into())]),
        binary_data: BTreeMap::from([("blob".into(), url.clone())]),
    };
    let openapi = core::ConfigMap {
        metadata: openapi_meta("settings"),
        data: Some(BTreeMap::from([("mode".into(), "prod".into())])),
        binary_data: Some(BTreeMap::from([("blob".into(), ByteString(url))])),
        ..Default::default()
    };
    assert_reads_as(&pb, &openapi);
}
