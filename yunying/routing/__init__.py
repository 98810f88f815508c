"""Routing (issue 15 part 7): rules forwarding received instances to other AEs or DICOMweb
endpoints through a persistent queue. Kept import-light: the archive imports `hook`."""
