"""`swarm join --auto`: offer this PC to the coordinator's plan, serve what it assigns, and ask again when moved."""

from __future__ import annotations

import argparse
import logging
import socket

from swarm.cli.worker_launch import join_config, model_path, serve_model
from swarm.launch.local_swarm import free_port
from swarm.shared.addresses import reachable_host, split_host_port
from swarm.shared.tls import TlsFiles
from swarm.wire import swarm_pb2 as pb
from swarm.worker.assignment import measure_speed, offered_memory, parse_size, request_assignment
from swarm.worker.coordinators import coordinator_list, dialed_host_port

log = logging.getLogger(__name__)


def run_auto_join(args: argparse.Namespace, coordinator: str, tls: TlsFiles | None) -> int:
    """coordinator: one HOST:PORT, several comma-separated, or a `dns:///NAME:PORT` name; any that answers assigns."""
    coordinators = coordinator_list(coordinator)
    host, port = split_host_port(args.listen)
    port = port or free_port(host)  # fixed across assignments: the coordinator tells other stages this address
    listen = f"{host}:{port}"
    route_to = reachable_host(dialed_host_port(coordinators[0]))
    address = args.advertise or f"{route_to if host in ('0.0.0.0', '::') else host}:{port}"
    node_id = args.worker_id or f"{socket.gethostname()}-{port}"
    memory = parse_size(args.memory) if args.memory else offered_memory()
    speed = args.speed or measure_speed()
    log.info("offering %s: %.1f GB at %.1f GB/s as %s", coordinator, memory / 1e9, speed / 1e9, node_id)
    offer = pb.AssignRequest(
        node_id=node_id, address=address, free_bytes=memory, speed=speed, context_length=args.context, slots=args.slots
    )
    while True:
        assignment = request_assignment(coordinators, args.token, tls, offer)
        log.info("assigned %s of %s", assignment.description, assignment.model)
        model = model_path(f"{assignment.split}:{assignment.stage_index}", assignment.coordinator, args.token, tls)
        config = join_config(
            args,
            coordinator,
            tls,
            model,
            listen=listen,
            advertise=address,
            worker_id=node_id,
            model_name=assignment.model,
            next_stage=assignment.next_stage,
        )
        code, moved = serve_model(config)
        if code or not moved:
            return code
