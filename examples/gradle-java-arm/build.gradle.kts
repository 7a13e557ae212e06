// A Java app whose image is built for the Raspberry Pi (arm/v7 and arm64) by an `Exec`
// task calling ocibuild: no Docker daemon on a Pi, no TCP socket opened on one, no
// emulation; the jar is platform-independent and the base image provides the ARM JRE.
//
//   gradle ociImage                                  (push to localhost:5000/zyxist/moj-obraz)
//   gradle ociImage -PociImage=myregistry.com:5000/zyxist/moj-obraz:1.0

plugins {
    java
}

group = "pl.zyxist"
version = "1.0"

tasks.withType<JavaCompile>().configureEach {
    // Bytecode for the JRE in the base image, whatever JDK runs the build.
    options.release.set(17)
}

tasks.jar {
    archiveFileName.set("moj-obraz.jar")
    manifest {
        attributes("Main-Class" to "pl.zyxist.mojobraz.Main")
    }
}

val ocibuild = providers.gradleProperty("ocibuild").orElse("ocibuild")
val ociBase = providers.gradleProperty("ociBase").orElse("docker.io/library/eclipse-temurin:17-jre")
val ociImage = providers.gradleProperty("ociImage").orElse("localhost:5000/zyxist/moj-obraz")
val ociPlatforms = providers.gradleProperty("ociPlatforms").orElse("linux/arm/v7,linux/arm64")

tasks.register<Exec>("ociImage") {
    group = "distribution"
    description = "Builds the app image for ARM with ocibuild and pushes it."
    dependsOn(tasks.jar)

    val libs = layout.buildDirectory.dir("libs")
    val digestFile = layout.buildDirectory.file("oci/digest")
    val metadataFile = layout.buildDirectory.file("oci/metadata.json")
    inputs.files(tasks.jar)
    inputs.property("ociBase", ociBase)
    inputs.property("ociImage", ociImage)
    inputs.property("ociPlatforms", ociPlatforms)
    outputs.file(digestFile)
    outputs.file(metadataFile)

    doFirst {
        digestFile.get().asFile.parentFile.mkdirs()
    }
    // build/libs holds only moj-obraz.jar; it becomes /app/moj-obraz.jar in the image.
    commandLine(
        ocibuild.get(),
        libs.get().asFile.path,
        "--from", ociBase.get(),
        "--platform", ociPlatforms.get(),
        "--dest", "/app",
        "--cmd", """["java", "-jar", "/app/moj-obraz.jar"]""",
        "--expose", "8080",
        "--digest-file", digestFile.get().asFile.path,
        "--metadata-file", metadataFile.get().asFile.path,
        "-t", ociImage.get(),
    )
}
