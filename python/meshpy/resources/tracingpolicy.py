"""TracingPolicy (policy.meshpy.io/v1alpha1): how much of a Service's traffic is traced.

A GEP-713 direct policy: ``targetRefs`` name Services in the policy's namespace. Their
instances' sidecars sample ``samplePercent`` of the traces that start at them, instead
of the mesh's share (the server's ``MESHPY_TRACE_SAMPLE_PERCENT``, or the mesh file's
``tracing``). A request that comes with a trace keeps its caller's decision, and a
failed one is recorded whatever the sampling.

```yaml
apiVersion: policy.meshpy.io/v1alpha1
kind: TracingPolicy
metadata: {name: payment, namespace: default}
spec:
  targetRefs: [{group: "", kind: Service, name: payment}]
  samplePercent: 100
```
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from meshpy.resources._common import PolicyTargetReference, SpecModel, unique_targets

__all__ = ["TracingPolicySpec"]


class TracingPolicySpec(SpecModel):
    """The spec of a TracingPolicy."""

    target_refs: Annotated[
        list[PolicyTargetReference],
        Field(min_length=1, max_length=16),
        AfterValidator(unique_targets),
    ]
    sample_percent: float = Field(ge=0.0, le=100.0, allow_inf_nan=False)
