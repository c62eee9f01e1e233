"""CDC: the inventory database, captured by logical decoding into Iceberg and Delta mirrors and
SCD2 histories (see README.md in this folder)."""
