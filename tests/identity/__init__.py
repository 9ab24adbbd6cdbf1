"""Tests of the certificate authority, the identity API and `meshpy identity`."""
