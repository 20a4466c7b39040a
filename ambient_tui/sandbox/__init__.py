"""A real local control plane (etcd, kube-apiserver, kwok, ...) plus AWS on loopback.

Used by the cluster test tier and by `ambient-tui sandbox`. Nothing here imports textual.
"""
