"""VirtualMachines and Containers: what both share, and the parts one driver needs.

| module | owns |
|---|---|
| `observe.py` | the bulk read of every domain, its fields, and what a loop keeps of it |
| `apply.py` | define, redefine, start, stop, shut down, delete |
| `disks.py` | a guest's disks: which volume is whose, made, grown, kept when the guest goes |
| `live.py` | live memory and vCPU changes on a running guest (QEMU: DIMM hotplug) |
| `guarantee.py` | a memory guarantee, read from and written to the guest's memory cgroup |
| `tools.py` | guest tools by driver: containers (`container_tools.py`) or VMs (`vm_tools.py`) |
| `vm_tools.py` | a VM's settings applied inside it and read back, exec, console, addresses |
| `agent.py` | the QEMU guest agent's calls: waiting for it, guest-exec, its errors |
| `lxc.py` | a container's root filesystem, made from its template's archive |
| `container_tools.py` | commands run in a container (nsenter on its init); `recon enter` |
| `container_guest.py` | a container's hostname, DNS, users, keys, passwords: set, read back |
"""
