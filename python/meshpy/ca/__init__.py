"""The mesh's certificate authority: SPIFFE X509-SVIDs for workloads, and root rotation.

``authority`` makes, loads, signs and rotates; ``certs`` builds and checks certificates;
``csr`` decides which signing requests are signed; ``rotation`` is the pure rotation
state machine; ``storage`` keeps the files in ``<home>/ca/`` (keys mode 0600);
``spiffeid`` spells trust domains and SPIFFE IDs. It knows no HTTP and no database.
Nothing is imported here, so ``meshpy.ca.spiffeid`` stays cheap to import.
"""
