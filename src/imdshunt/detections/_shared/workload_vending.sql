-- What a container or function credential finding reports about the credential's vending:
-- the vending event and, for EKS, the cluster, namespace, service account and pod it names.
-- Included with the line '-- imdshunt: include workload_vending'.
max(vending_event_id) AS vending_event_id,
bool_and(vending_event_missing) AS vending_event_missing,
max(vended_eks_cluster) AS eks_cluster,
max(vended_k8s_namespace) AS k8s_namespace,
max(vended_k8s_service_account) AS k8s_service_account,
max(vended_k8s_pod) AS k8s_pod,
