-- Confidence and severity of a binding finding (the credential was used from a place that
-- cannot be its instance's). Included by a detection's query.sql with the line
-- '-- imdshunt: include binding_severity'. High confidence is high severity, anything less
-- medium; the instance identity role one step lower (little power, but proof of IMDS access).
min(confidence) AS confidence,
CASE
    WHEN bool_or(is_instance_identity) THEN
        CASE WHEN min(confidence) = 'high' THEN 'medium' ELSE 'low' END
    WHEN min(confidence) = 'high' THEN 'high'
    ELSE 'medium'
END AS severity,
