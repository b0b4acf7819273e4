"""VirtualMachines and Containers: what both share, and the parts one driver needs.

| module | owns |
|---|---|
| `observe.py` | the bulk read of every domain, its fields, and what a loop keeps of it |
| `apply.py` | define, redefine, start, stop, shut down, delete |
| `disks.py` | a guest's disks: which volume is whose, made, grown, kept when the guest goes |
| `live.py` | live memory and vCPU changes on a running guest (QEMU: DIMM hotplug) |
| `guarantee.py` | a memory guarantee, read from and written to the guest's memory cgroup |
| `agent.py` | settings inside the guest through its agent (user passwords) |
| `lxc.py` | a container's root filesystem, made from its template's archive |
"""
