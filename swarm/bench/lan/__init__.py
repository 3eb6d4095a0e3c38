"""An emulated LAN on one machine: PCs as sets of pinned cores, links as delaying, rate-capping TCP relays."""
