"""The segment export API (seed 004, APSIS-style): requests, jobs, the file writer, HTTP."""
