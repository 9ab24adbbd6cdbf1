"""Integration tests: real `meshpy proxy run` processes and real backends on 127.0.0.1."""
