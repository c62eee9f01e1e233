"""ML: a Feast feature store over the aviation domain, point-in-time training sets, a delay model
and its online endpoint (``assets/ml/README.md``)."""
