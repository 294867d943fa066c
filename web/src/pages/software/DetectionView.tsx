// A detection rule as indented sentences ("dpkg package “nginx” is installed with version ≥ 1.22").
import { Stack, Text } from "@mantine/core";
import { type Detection, describeDetection } from "../../lib/software";

export function DetectionView({ detection }: { detection: Detection }) {
  return (
    <Stack gap={2} data-testid="detection">
      {describeDetection(detection).map((l, i) => (
        <Text key={i} size="sm" pl={l.depth * 20}>
          {l.depth > 0 ? "• " : ""}
          {l.text}
        </Text>
      ))}
    </Stack>
  );
}
