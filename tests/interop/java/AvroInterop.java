// An independent producer and consumer of the resolver's topics, written with the Apache Avro
// reference implementation (BinaryMessageEncoder / BinaryMessageDecoder: single-object encoding)
// and the Kafka Java client, as a label's Java service would be. Used by tests/integration/test_interop.py.
//
//   produce BOOTSTRAP TOPIC WRITER.avsc TAG COUNT
//       COUNT ContentEvents written with WRITER.avsc; prints {"event_id", "header"} per event.
//   read BOOTSTRAP TOPIC EXPECT TIMEOUT_S READER.avsc [WRITER.avsc ...]
//       reads TOPIC (read_committed) from the beginning until EXPECT records or the timeout, decodes
//       each as READER.avsc (knowing the extra WRITER schemas too); prints one JSON line per record
//       and a summary line.

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.io.JsonEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class AvroInterop {
    private static final String[][] SONGS = {
        {"Harbour Lights at Midnight", "Marla Quinn"},
        {"Thunder Over Velvet Hills", "The Copper Foxes"},
        {"Paper Boats on the Thames", "Ivy Calder"},
    };

    public static void main(String[] args) throws Exception {
        if (args.length >= 6 && args[0].equals("produce")) {
            produce(args[1], args[2], parse(args[3]), args[4], Integer.parseInt(args[5]));
        } else if (args.length >= 6 && args[0].equals("read")) {
            List<Schema> writers = new ArrayList<>();
            for (int i = 6; i < args.length; i++) {
                writers.add(parse(args[i]));
            }
            read(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]), parse(args[5]), writers);
        } else {
            System.err.println("usage: produce BOOTSTRAP TOPIC WRITER.avsc TAG COUNT"
                + " | read BOOTSTRAP TOPIC EXPECT TIMEOUT_S READER.avsc [WRITER.avsc ...]");
            System.exit(2);
        }
    }

    private static Schema parse(String path) throws IOException {
        return new Schema.Parser().parse(new File(path));
    }

    /** The 8 fingerprint bytes of the spec's header, as hex (CRC-64-AVRO, little-endian). */
    private static String fingerprintHex(Schema schema) {
        long fp = SchemaNormalization.parsingFingerprint64(schema);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < 8; i++) {
            out.append(String.format("%02x", (fp >>> (8 * i)) & 0xff));
        }
        return out.toString();
    }

    private static void produce(String bootstrap, String topic, Schema writer, String tag, int count)
            throws Exception {
        BinaryMessageEncoder<GenericRecord> encoder = new BinaryMessageEncoder<>(GenericData.get(), writer);
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("acks", "all");
        props.put("enable.idempotence", "true");
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (int i = 0; i < count; i++) {
                String[] song = SONGS[i % SONGS.length];
                String eventId = "java-" + tag + "-" + i;
                GenericRecordBuilder b = new GenericRecordBuilder(writer)
                    .set("event_id", eventId)
                    .set("content_id", "java:" + tag + ":" + i)
                    .set("source", "java-" + tag)
                    .set("kind", "recording")
                    .set("title", song[0])
                    .set("artists", List.of(song[1]))
                    .set("duration_ms", 200_000L + 1000L * (i % SONGS.length))
                    .set("produced_at_ms", System.currentTimeMillis());
                if (writer.getField("language") != null) {
                    b.set("language", "en");
                }
                if (writer.getField("mood") != null) {
                    b.set("mood", "calm");
                }
                byte[] value = encoder.encode(b.build()).array();
                byte[] key = song[0].toLowerCase().getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(topic, key, value)).get();
                StringBuilder header = new StringBuilder();
                for (int j = 0; j < 10; j++) {
                    header.append(String.format("%02x", value[j] & 0xff));
                }
                System.out.println("{\"event_id\": \"" + eventId + "\", \"header\": \"" + header + "\"}");
            }
            producer.flush();
        }
    }

    private static void read(String bootstrap, String topic, int expect, int timeoutS, Schema reader,
            List<Schema> writers) throws Exception {
        BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(GenericData.get(), reader);
        for (Schema w : writers) {
            decoder.addSchema(w);
        }
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("isolation.level", "read_committed");
        props.put("enable.auto.commit", "false");
        props.put("auto.offset.reset", "earliest");
        int read = 0;
        int decoded = 0;
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                parts.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            long deadline = System.nanoTime() + timeoutS * 1_000_000_000L;
            while (read < expect && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofMillis(500))) {
                    read++;
                    String where = "\"partition\": " + rec.partition() + ", \"offset\": " + rec.offset();
                    try {
                        GenericRecord record = decoder.decode(rec.value());
                        decoded++;
                        System.out.println("{" + where + ", \"ok\": true, \"record\": " + json(reader, record) + "}");
                    } catch (IOException | RuntimeException e) {
                        String msg = String.valueOf(e).replace("\\", "\\\\").replace("\"", "\\\"");
                        System.out.println("{" + where + ", \"ok\": false, \"error\": \"" + msg + "\"}");
                    }
                }
            }
        }
        System.out.println("{\"summary\": {\"topic\": \"" + topic + "\", \"read\": " + read + ", \"decoded\": "
            + decoded + ", \"reader_fingerprint\": \"" + fingerprintHex(reader) + "\"}}");
    }

    /** Avro's own JSON encoding of a record (unions as {"type": value}). */
    private static String json(Schema schema, GenericRecord record) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        JsonEncoder enc = EncoderFactory.get().jsonEncoder(schema, out);
        new GenericDatumWriter<GenericRecord>(schema).write(record, enc);
        enc.flush();
        return out.toString(StandardCharsets.UTF_8).strip();
    }
}
