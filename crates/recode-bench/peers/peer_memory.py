"""What every Python peer of `recode bench` reports about its memory. `run_peer_script` writes
this module beside the peer script, so a peer imports it as `from peer_memory import ...`."""
import resource


def peak_rss_bytes():
    """Peak resident set size of this process: VmHWM, which starts afresh at exec (ru_maxrss
    keeps the high-water mark of the recode process this peer was forked from)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
